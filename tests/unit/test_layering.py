"""Dependencies point down, checked in a fresh interpreter per case: reading settings loads no PyAV, the
producer does not import the API server's package, the VOD bench loads neither pyspark nor the VOD query,
and the executor task module loads no pyspark."""

from __future__ import annotations

import subprocess
import sys

import pytest


def loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(proc.stdout.split())


@pytest.mark.parametrize(("statement", "forbidden"), [
    ("from lab.config import settings; settings.ladder", {"av", "imageio_ffmpeg"}),
    ("import lab.media; lab.media.LADDER", {"av", "imageio_ffmpeg"}),
    ("import lab.producer.encoder, lab.producer.replay, lab.producer.upload, lab.producer.vod", {"lab.api"}),
    ("import lab.bench.vod", {"pyspark", "lab.streaming.vod"}),
    ("import lab.streaming.vod_task", {"pyspark", "lab.catalog", "lab.streaming.vod"}),
])
def test_imports_point_down(statement: str, forbidden: set[str]) -> None:
    found = loaded_after(statement) & forbidden
    assert not found, f"{statement!r} loaded {sorted(found)}"
