"""The VOD query's executor side: one raw segment -> every rung, in S3 (`transcode_task`), and the module
Spark's Python daemon runs (`python -m lab.streaming.vod_task`, set as `spark.python.daemon.module` for the
VOD application).

A task runs in a Python worker forked by that daemon, on an executor. It returns a small dict (it crosses
processes) and never raises for a bad segment: the driver (vod.py) records the result. Nothing here imports
pyspark, the catalog or the driver's modules, so a forked worker loads only what a task needs.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lab import events, storage
from lab.config import settings
from lab.media.checksum import sha256_bytes
from lab.media.ffmpeg import FfmpegError, MediaError, children_cpu_seconds
from lab.media.ladder import ladder_for
from lab.media.transcode import transcode_segment


class ChecksumMismatch(ValueError):
    pass


def transcode_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """One segment, on an executor. Never raises for a bad segment: the result says what went wrong
    (`error_kind`: checksum | media | missing, which fail the stream, or transient: S3 or the network), so one
    bad segment fails its stream, not the query. `task`: a VodChunkEvent as a dict, plus `threads`."""
    started = time.monotonic()
    result: dict[str, Any] = {"stream_id": task["stream_id"], "chunk_index": task["chunk_index"], "ok": False,
                              "error": None, "error_kind": None, "renditions": [], "started_at_ms": events.now_ms(),
                              "executor": f"{socket.gethostname()}:{os.getpid()}"}
    workdir = Path(tempfile.mkdtemp(prefix=f"lab-vod-{task['stream_id']}-{task['chunk_index']}-"))
    try:
        result.update(_transcode_and_upload(task, workdir))
        result["ok"] = True
    except ChecksumMismatch as exc:
        result.update(error=str(exc), error_kind="checksum")
    except (FfmpegError, MediaError) as exc:
        result.update(error=f"transcode failed: {exc}", error_kind="media")
    except Exception as exc:  # S3 or the network, after boto3's own retries: worth another try later
        if _is_missing(exc):
            result.update(error=f"raw segment {task['raw_key']} is missing", error_kind="missing")
        else:
            result.update(error=f"{type(exc).__name__}: {exc}", error_kind="transient")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["task_seconds"] = round(time.monotonic() - started, 3)
    result["finished_at_ms"] = events.now_ms()
    return result


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("NoSuchKey", "404")


def _transcode_and_upload(task: Mapping[str, Any], workdir: Path) -> dict[str, Any]:
    sid, index = task["stream_id"], task["chunk_index"]
    began = time.monotonic()
    data = storage.get_bytes(settings.bucket_vod_raw, task["raw_key"])
    digest = sha256_bytes(data)
    if digest != task["checksum_sha256"]:
        raise ChecksumMismatch(f"checksum mismatch on {task['raw_key']}: sha256 {digest[:16]}… in the bucket, "
                               f"{task['checksum_sha256'][:16]}… when it was cut")
    raw = workdir / "raw.ts"
    raw.write_bytes(data)
    downloaded = time.monotonic()
    rungs = ladder_for(task["source_height"], list(task["rungs"]))
    cpu = children_cpu_seconds()
    files = transcode_segment(raw, workdir / "out", rungs, index, task["start_ms"] / 1000,
                              threads=task.get("threads", 0))
    cpu = children_cpu_seconds() - cpu
    encoded = time.monotonic()
    renditions = []
    for f in files:
        key = storage.variant_segment_key(sid, f.rung, index)
        storage.put_segment(settings.bucket_vod_variants, key, f.path.read_bytes(), f.sha256)
        renditions.append({"rung": f.rung, "key": key, "sha256": f.sha256, "size_bytes": f.size_bytes,
                           "duration_ms": round(f.duration_s * 1000, 1), "width": f.width, "height": f.height,
                           "profile": f.profile, "level": f.level})
    return {"renditions": renditions, "download_seconds": round(downloaded - began, 3),
            "encode_seconds": round(encoded - downloaded, 3), "encode_cpu_seconds": round(cpu, 3),
            "upload_seconds": round(time.monotonic() - encoded, 3)}


# --- Spark's Python daemon, preloaded ----------------------------------------------------------------

def preload() -> None:
    """What every segment task needs, loaded once in the daemon that forks the Python workers: a worker
    forked from it starts with boto3, PyAV and the settings already imported and an S3 client built. Spark
    stops a Python worker after a minute idle, so without this each upload after a pause waits for fresh
    workers to import all of it before its first task begins (README, VOD figures: what it saves)."""
    storage.s3()  # only builds the client: no connection is opened before the fork


if __name__ == "__main__":
    # Spark starts the daemon as `python -m <module>` and reads its port from stdout: nothing here prints.
    from pyspark import daemon

    preload()
    daemon.manager()
