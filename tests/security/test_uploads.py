"""Upload limits: a source outside VOD_MIN/MAX_WIDTH/HEIGHT or shorter than VOD_MIN_DURATION_S is refused
with a 422 naming the limit, and nothing is written (a 1x1 video used to become a 4x2 "360p")."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from lab import catalog
from lab.media.ffmpeg import ffmpeg_exe
from tests.security.conftest import KEY

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]


def _clip(path: Path, size: str, seconds: float, pix_fmt: str = "yuv420p") -> Path:
    """A tiny H.264 clip; yuv444p lets x264 make odd sizes such as 1x1 (4:2:0 needs even ones)."""
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25",
                    "-t", str(seconds), "-c:v", "libx264", "-pix_fmt", pix_fmt, str(path)], check=True)
    return path


@pytest.mark.parametrize(("size", "seconds", "pix_fmt", "limit"), [
    ("1x1", 3, "yuv444p", "VOD_MIN_WIDTH"),
    ("320x2", 3, "yuv420p", "VOD_MIN_HEIGHT"),
    ("640x360", 0.4, "yuv420p", "VOD_MIN_DURATION_S"),
])
def test_sources_outside_the_limits_are_refused_and_nothing_is_written(api, tmp_path, size, seconds, pix_fmt, limit):
    clip = _clip(tmp_path / "clip.mp4", size, seconds, pix_fmt)
    title = f"security: {size} {seconds}s {uuid.uuid4().hex[:8]}"
    with clip.open("rb") as fh:
        resp = api.post("/vod/upload", headers=KEY, files={"file": ("clip.mp4", fh, "video/mp4")},
                        data={"title": title})
    assert resp.status_code == 422 and resp.json()["detail"].startswith("file:"), resp.text
    assert limit in resp.json()["detail"]
    # the producer uploads beside this test, so look for this upload's own traces, not for counts
    assert catalog.collection(catalog.VOD).find_one({"title": title}) is None
