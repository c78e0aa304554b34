"""Lesson 01 solutions."""

import zlib


def partition_of(key: str, partitions: int) -> int:
    """librdkafka's default partitioner (consistent_random): CRC-32 of the key's bytes, modulo the count."""
    return zlib.crc32(key.encode()) % partitions


def ex1_key_for_partition(target: int, partitions: int) -> str:
    """Search made-up stream ids until the partitioner's hash lands on `target`."""
    return next(key for key in (f"live-{i:010d}" for i in range(10_000))
                if partition_of(key, partitions) == target)


def ex2_fixed_event(stream_id: str, segment) -> dict:
    """Chunk 2 of the lesson's stream: its segment uploaded first, then the bad event `{"event_type":
    "live_chunk"}` with every field the reasons asked for, one at a time."""
    import time

    from lab import storage
    from lab.config import settings

    key = storage.live_chunk_key(stream_id, 2)
    storage.put_segment(settings.bucket_live, key, segment.data, segment.sha256)  # upload first
    return {"event_type": "live_chunk", "stream_id": stream_id, "chunk_index": 2, "sequence_number": 2,
            "object_key": key, "checksum_sha256": segment.sha256, "size_bytes": len(segment.data),
            "duration_ms": segment.duration_ms, "keyframe_aligned": segment.keyframe_aligned,
            "audio_track_id": f"audio-{stream_id}", "video_track_id": f"video-{stream_id}",
            "published_at_ms": int(time.time() * 1000)}


def ex3_grow(admin, topic: str, partitions: int) -> None:
    """Add partitions up to a new total, and wait until the broker has them."""
    from confluent_kafka.admin import NewPartitions

    for future in admin.create_partitions([NewPartitions(topic, partitions)], request_timeout=30).values():
        future.result()


def ex3_moved(keys: list[str], before: int, after: int) -> set[str]:
    return {key for key in keys if partition_of(key, before) != partition_of(key, after)}
