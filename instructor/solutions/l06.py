"""Lesson 06 solutions."""


def ex1_position(stream_id: str, chunk_index: int) -> tuple[int, int]:
    from lab import catalog

    doc = catalog.find_by_id(catalog.LIVE, catalog.doc_id(stream_id, chunk_index))
    return doc["kafka_partition"], doc["kafka_offset"]


def ex2_slowest(durations: dict[str, float]) -> str:
    return max(durations, key=durations.get)
