"""Lesson 09 (read path): a forged playback URL, refused; a CDN URL derived from the stream id alone."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from lab.exercises import Verdict, checker, hint, kind, passed, untouched


@checker
def forged_refused(forged: Any, original: str) -> Verdict:
    from lab import urls
    from lab.apiclient import detail

    if untouched(forged):
        return hint("set FORGED to `url` with its `exp` pushed a day later (keep the same sig), using with_query")
    if not isinstance(forged, str):
        return hint(f"FORGED is {kind(forged)}: it is the URL, a str (with_query gives one)")
    if urlsplit(forged).path != urlsplit(original).path:
        return hint("FORGED must be the same /play/… URL as `url`, with a changed query")
    mine, theirs = parse_qs(urlsplit(forged).query), parse_qs(urlsplit(original).query)
    if mine.get("sig") != theirs.get("sig"):
        return hint("keep the original sig: the point is to change what it signed (exp) without the secret")
    if mine.get("exp") == theirs.get("exp"):
        return hint("change exp: for example int(query['exp'][0]) + 86400")
    try:
        pushed = int(mine["exp"][0]) > int(theirs["exp"][0])
    except (KeyError, ValueError):
        return hint(f"exp must be a number of seconds since 1970, as in `url`; yours is {mine.get('exp')}")
    if not pushed:
        return hint("you moved exp earlier: a URL that has expired is refused for that alone, which proves "
                    "nothing about the signature. Push it later, as a borrower who wants more time would")
    resp = urls.fetch(forged)
    if resp.status_code == 200:
        return hint("the API accepted a URL whose expiry you changed: that is a security bug, tell the instructor")
    if resp.status_code != 403:
        return hint(f"the API answered {resp.status_code} ({detail(resp)}); a forged URL should get 403")
    if not detail(resp).startswith("sig"):
        return hint(f"refused, but for another reason ({detail(resp)}): change only exp, keep everything else")
    return passed(f"refused with 403 ({detail(resp)}): exp is part of what the HMAC signs, so changing it "
                  "without the secret breaks the signature")


@checker
def cdn_url_derived(answer: Any, vod_id: str, rung: str, index: int) -> Verdict:
    from lab import storage
    from lab.config import settings

    if not untouched(answer) and not isinstance(answer, str):
        return hint(f"MY_CDN_URL is {kind(answer)}: it is a URL, a str")
    if untouched(answer):
        return hint(f"set MY_CDN_URL to the CDN URL of segment {index} of the {rung} rendition, from the stream id "
                    "alone (storage.cdn_url and the key functions of lab/storage.py)")
    expected = storage.cdn_url(settings.bucket_vod_variants, storage.variant_segment_key(vod_id, rung, index))
    if answer != expected:
        return hint(f"not that one: VOD segments are in the {settings.bucket_vod_variants} bucket, under "
                    "{stream_id}/{rung}/{index}.ts, behind CDN_BASE_URL")
    return passed(f"{answer}: computed without asking the catalog, so an edge can compute it too")


@checker
def signed_by_you(sign: Any, stream_id: str, other_stream_id: str) -> Verdict:
    """Build it: `sign(stream_id, exp)` is the edge's signer (it shares URL_SIGNING_SECRET with the API). The
    real API judges the URLs it signs: two expiries of the lesson's stream must play, and its signature of
    another stream must differ."""
    import time

    from lab import playback, storage, urls
    from lab.apiclient import detail
    from lab.exercises import call

    todo = hint("write sign(stream_id, exp): the HMAC-SHA256 of f'{stream_id}:{exp}' with "
                "settings.url_signing_secret, as hex, its first 32 digits")
    if untouched(sign):
        return todo
    if not callable(sign):
        return hint(f"sign is {kind(sign)}: define it as a function, def sign(stream_id, exp)")
    now = int(time.time())
    sigs = {}
    for exp in (now + 600, now + 1200):
        sig, broke = call(sign, stream_id, exp, name="sign", case=f"({stream_id!r}, {exp})")
        if broke is not None:
            return broke
        if untouched(sig):
            return todo
        if not isinstance(sig, str):
            return hint(f"sign returned {kind(sig)}: return the hex digest as a str (.hexdigest()[:32])")
        url = playback.playlist_url(stream_id, storage.LIVE_PLAYLIST_NAME, exp, sig)
        resp = urls.fetch(url)
        if resp.status_code != 200:
            same = " (the same as for the other expiry: is exp part of what you sign?)" if sig in sigs.values() else ""
            return hint(f"the API refused your URL for exp={exp}: {resp.status_code} {detail(resp)}{same}. Sign "
                        "exactly f'{stream_id}:{exp}', with hmac.new(secret.encode(), msg.encode(), hashlib.sha256), "
                        "and keep the first 32 hex digits")
        sigs[exp] = sig
    theirs, broke = call(sign, other_stream_id, now + 600, name="sign", case="another stream")
    if broke is not None:
        return broke
    if theirs == sigs[now + 600]:
        return hint("your sign gives another stream the same signature: the stream id must be part of what you sign")
    return passed(f"the API played both URLs your sign made for {stream_id}: an edge that holds the secret can "
                  "sign for viewers without asking the API, and nobody without it can")
