"""Lesson 09 (read path): a forged playback URL, refused; a CDN URL derived from the stream id alone."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from lab.exercises import Verdict, checker, hint, passed, untouched


@checker
def forged_refused(forged: Any, original: str) -> Verdict:
    from lab import urls
    from lab.apiclient import detail

    if untouched(forged):
        return hint("set FORGED to `url` with its `exp` pushed a day later (keep the same sig), using with_query")
    if not isinstance(forged, str) or urlsplit(forged).path != urlsplit(original).path:
        return hint("FORGED must be the same /play/… URL as `url`, with a changed query")
    mine, theirs = parse_qs(urlsplit(forged).query), parse_qs(urlsplit(original).query)
    if mine.get("sig") != theirs.get("sig"):
        return hint("keep the original sig: the point is to change what it signed (exp) without the secret")
    if mine.get("exp") == theirs.get("exp"):
        return hint("change exp: for example int(query['exp'][0]) + 86400")
    resp = urls.fetch(forged)
    if resp.status_code == 200:
        return hint("the API accepted a URL whose expiry you changed: that is a security bug, tell the instructor")
    if resp.status_code != 403:
        return hint(f"the API answered {resp.status_code} ({detail(resp)}); a forged URL should get 403")
    return passed(f"refused with 403 ({detail(resp)}): exp is part of what the HMAC signs, so changing it "
                  "without the secret breaks the signature")


@checker
def cdn_url_derived(answer: Any, vod_id: str, rung: str, index: int) -> Verdict:
    from lab import storage
    from lab.config import settings

    if untouched(answer):
        return hint(f"set MY_CDN_URL to the CDN URL of segment {index} of the {rung} rendition, from the stream id "
                    "alone (storage.cdn_url and the key functions of lab/storage.py)")
    expected = storage.cdn_url(settings.bucket_vod_variants, storage.variant_segment_key(vod_id, rung, index))
    if answer != expected:
        return hint(f"not that one: VOD segments are in the {settings.bucket_vod_variants} bucket, under "
                    "{stream_id}/{rung}/{index}.ts, behind CDN_BASE_URL")
    return passed(f"{answer}: computed without asking the catalog, so an edge can compute it too")
