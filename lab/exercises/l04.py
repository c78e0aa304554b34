"""Lesson 04 (VOD): the ladder of a 480p upload, predicted then seen; one rendition traced to S3 and back."""

from __future__ import annotations

from typing import Any

from lab.exercises import Verdict, checker, hint, kind, passed, untouched


@checker
def rendition_traced(vod_id: str, rung: str, index: int, key: Any, sha256: Any) -> Verdict:
    from lab import catalog, media, storage
    from lab.config import settings

    if untouched(key) or untouched(sha256):
        return hint(f"set MY_KEY to the S3 key of segment {index} at {rung} (lab/storage.py builds it), and "
                    "MY_SHA256 to the checksum the catalog recorded for it (its chunk document's `variants`)")
    for name, value in (("MY_KEY", key), ("MY_SHA256", sha256)):
        if not isinstance(value, str):
            return hint(f"{name} is {kind(value)}: it is a str")
    expected_key = storage.variant_segment_key(vod_id, rung, index)
    if key != expected_key:
        return hint(f"{key!r} is not where segment {index} at {rung} lives: keys are "
                    "{stream_id}/{rung}/{index}.ts in the vod-variants bucket")
    doc = catalog.find_by_id(catalog.VOD, catalog.doc_id(vod_id, index)) or {}
    variants = doc.get("variants") or {}
    recorded = (variants.get(rung) or {}).get("sha256")
    other = next((r for r, v in variants.items() if r != rung and (v or {}).get("sha256") == sha256), None)
    if other:
        return hint(f"that is the checksum chunk {index} recorded for {other}; the exercise asks for {rung}")
    if sha256 == doc.get("raw_sha256"):
        return hint(f"that is the checksum of the source segment (what was uploaded); the transcode recorded "
                    f"one per rendition: variants[{rung!r}]")
    if sha256 != recorded:
        return hint(f"that is not the checksum chunk {index}'s document recorded for {rung}: look at "
                    f"catalog.chunk_docs(catalog.VOD, vod_id)[{index}]['variants']")
    actual = media.sha256_bytes(storage.get_bytes(settings.bucket_vod_variants, key))
    if actual != recorded:
        return hint("the catalog's checksum and the bytes in S3 differ: tell the instructor (the object changed)")
    return passed(f"{settings.bucket_vod_variants}/{key}: the bytes in S3 hash to the SHA-256 the transcode "
                  "recorded, so a player gets exactly what the executor made")



@checker
def predicted_ladder(predicted: Any, answered: list[str], height: int) -> Verdict:
    if untouched(predicted):
        return hint(f"set PREDICTED_RUNGS to the rungs you expect for a {height}p source, highest first, "
                    "e.g. ['720p', '360p']")
    if isinstance(predicted, str):
        return hint(f"PREDICTED_RUNGS is one str, {predicted!r}: make it a list of rung names, such as "
                    "['720p', '360p']")
    if not isinstance(predicted, (list, tuple)) or not all(isinstance(r, str) for r in predicted):
        odd = next((r for r in predicted if not isinstance(r, str)), None) if isinstance(predicted, (list, tuple)) \
            else predicted
        return hint(f"PREDICTED_RUNGS holds {kind(odd)} ({odd!r}): it is a list of rung names (str), such as "
                    "['720p', '360p']")
    above = [r for r in predicted if r.rstrip("pP").isdigit() and int(r.rstrip("pP")) > height]
    if above:
        return hint(f"{', '.join(above)} would upscale a {height}-line source: a rung above the source adds bits, "
                    "not detail. Which rungs of the ladder are at or below it?")
    if sorted(predicted) == sorted(answered) and list(predicted) != list(answered):
        return hint("the right rungs, in another order: highest first, as the master playlist lists them")
    if list(predicted) != list(answered):
        return hint(f"you said {list(predicted)}; the API answered {list(answered)} for a {height}p source. "
                    "Which rungs of the ladder are at or below the source's height? (highest first)")
    return passed(f"{', '.join(answered)}: every rung at or below {height}p, nothing upscaled")