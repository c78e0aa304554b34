"""Lesson 01 solutions."""

from lab.exercises.l01 import predicted_partition


def ex1_key_for_partition(target: int, partitions: int) -> str:
    """Search made-up stream ids until the partitioner's hash lands on `target`."""
    return next(key for key in (f"live-{i:010d}" for i in range(10_000))
                if predicted_partition(key, partitions) == target)


def ex2_fixed_event(stream_id: str, key: str, sha256: str) -> dict:
    """The bad event `{"event_type": "live_chunk"}` with every field the reasons asked for, one at a time."""
    import time

    return {"event_type": "live_chunk", "stream_id": stream_id, "chunk_index": 7, "sequence_number": 7,
            "object_key": key, "checksum_sha256": sha256, "size_bytes": 1000, "duration_ms": 2000,
            "keyframe_aligned": True, "audio_track_id": f"audio-{stream_id}", "video_track_id": f"video-{stream_id}",
            "published_at_ms": int(time.time() * 1000)}
