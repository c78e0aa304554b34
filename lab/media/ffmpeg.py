"""The ffmpeg executable (from the imageio-ffmpeg wheel, which ships no ffprobe), running it, its errors."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import imageio_ffmpeg


class MediaError(ValueError):
    """The input is not usable media. `field` names the request field, `reason` says why (for a 4xx)."""

    def __init__(self, reason: str, field: str = "file"):
        super().__init__(reason)
        self.field = field
        self.reason = reason


class FfmpegError(RuntimeError):
    """ffmpeg failed on input that looked valid; the message ends with the tail of its stderr."""


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def base_argv() -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]


def threads_option(threads: int) -> list[str]:
    return ["-threads", str(threads)] if threads else []


def run(argv: list[str], what: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise FfmpegError(f"ffmpeg failed to {what} (exit {proc.returncode}): {tail(proc.stderr)}")
    return proc


def tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def decode_check(url_or_path: str | Path, *, timeout: float = 600.0) -> None:
    """Decode every stream to nowhere, as a player would; FfmpegError with ffmpeg's messages if it reports any
    error, even when it exits 0 (damaged slices are reported but not fatal). A live playlist is followed
    until its ENDLIST, like a player does; `timeout` bounds that."""
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
            # a local playlist may point at http(s) segments; ffmpeg's default whitelist would refuse them
            "-protocol_whitelist", "file,http,https,tcp,tls,crypto",
            "-i", str(url_or_path), "-map", "0", "-f", "null", "-"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0 or proc.stderr.strip():
        raise FfmpegError(f"decoding {url_or_path} failed (exit {proc.returncode}): {tail(proc.stderr)}")


def children_cpu_seconds() -> float:
    """CPU (user + system) of this process's finished children: ffmpeg's work, whatever else the machine
    runs (wall time on a shared machine says more about the neighbours)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
