"""Lesson 04 solutions."""

PREDICTED_RUNGS = ["480p", "360p"]  # at or below the source's 480 lines, highest first; 720p would upscale


def ex1_trace(vod_id: str, rung: str, index: int) -> tuple[str, str]:
    from lab import catalog, storage

    key = storage.variant_segment_key(vod_id, rung, index)
    doc = catalog.find_by_id(catalog.VOD, catalog.doc_id(vod_id, index))
    return key, doc["variants"][rung]["sha256"]
