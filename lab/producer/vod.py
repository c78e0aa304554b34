"""The producer's VOD thread: a content creator's client uploading an episode every VOD_INTERVAL_MIN..MAX
seconds, as the reference's does, but with real clips (from `data/`, made at set-up) through the real API.

An upload that fails (API down, a refused file) is logged and the next round tries again: the thread only
ends when `stop` is set.
"""

from __future__ import annotations

import logging
import random
import threading
from pathlib import Path

import httpx

from lab import metrics
from lab.config import settings
from lab.producer.clips import ensure_sample_clips, sample_clips
from lab.producer.upload import UploadError, api_client, upload_file

log = logging.getLogger(__name__)
STREAM_TYPE = "vod"


def episode_title(number: int) -> str:
    return f"{settings.vod_show_name} - Episode {number}"


def next_clip(clips: list[Path], number: int) -> Path:
    """Round robin: each clip size (and so each ladder) comes up in turn."""
    return clips[(number - 1) % len(clips)]


def _clips() -> list[Path]:
    clips = sample_clips()
    if not clips:  # `lab setup` makes them; a fresh checkout run straight with `lab producer` still works
        ensure_sample_clips(report=log.info)
        clips = sample_clips()
    return clips


def upload_once(client: httpx.Client, clip: Path, number: int) -> str:
    answer = upload_file(client, clip, episode_title(number))
    metrics.producer_bytes.labels(STREAM_TYPE).inc(clip.stat().st_size)
    return answer["stream_id"]


def run_vod_uploader(stop: threading.Event) -> None:
    """Upload a clip every uniform(VOD_INTERVAL_MIN, VOD_INTERVAL_MAX) s until `stop` is set."""
    clips = _clips()
    log.info("VOD uploader: %d clip(s) in data/, one upload every %g-%g s", len(clips),
             settings.vod_interval_min, settings.vod_interval_max)
    episode = 1  # counts uploads the API accepted: a failed round retries the same episode
    with api_client() as client:
        while not stop.wait(random.uniform(settings.vod_interval_min, settings.vod_interval_max)):
            clip = next_clip(clips, episode)
            try:
                stream_id = upload_once(client, clip, episode)
            except (UploadError, httpx.HTTPError, OSError, KeyError, ValueError) as exc:
                log.warning("VOD upload of %s failed, trying again next round: %s", clip.name, exc)
                continue
            log.info("uploaded %s as %s (%r)", clip.name, stream_id, episode_title(episode))
            episode += 1
