"""H.264 in a segment: does its first video access unit start with an IDR slice (NAL type 5)?"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import av


def first_frame_is_idr(ts: Path | str | bytes) -> bool:
    """True if the first video access unit holds an IDR slice (NAL type 5) before any non-IDR slice.
    Accepts a path or the segment's bytes (the live encoder checks what it is about to upload)."""
    with _open(ts) as container:
        if not container.streams.video:
            return False
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                return _idr_first(bytes(packet))
    return False


def _open(source: Path | str | bytes) -> av.container.InputContainer:
    if isinstance(source, bytes):
        return av.open(io.BytesIO(source), format="mpegts")
    return av.open(str(source))


def _idr_first(data: bytes) -> bool:
    for nal_type in _nal_types(data):
        if nal_type == 5:
            return True
        if nal_type == 1:  # a non-IDR slice came first
            return False
    return False


def _nal_types(data: bytes) -> Iterator[int]:
    """NAL unit types of an Annex-B access unit (MPEG-TS); falls back to 4-byte length prefixes (MP4)."""
    if data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
        pos = data.find(b"\x00\x00\x01")
        while pos != -1 and pos + 3 < len(data):
            yield data[pos + 3] & 0x1F
            pos = data.find(b"\x00\x00\x01", pos + 3)
        return
    pos = 0
    while pos + 4 < len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        yield data[pos + 4] & 0x1F
        pos += 4 + size
