"""What to type into OBS (or any RTMP/SRT encoder) to go live into the lab: `lab live ingest`, lesson 10."""

from __future__ import annotations

from lab.apiclient import client, detail
from lab.config import settings
from lab.live_ingest import urls


def start(protocol: str = "rtmp", title: str | None = None) -> dict:
    """`POST /streams/start` for an OBS publisher: the stream id, its key and where to connect."""
    with client() as api:
        resp = api.post("/streams/start", json={"ingest": protocol, **({"title": title} if title else {})})
    if resp.status_code != 201:
        raise SystemExit(f"POST /streams/start: {resp.status_code} {detail(resp)}")
    return resp.json()


def obs_settings(started: dict) -> list[str]:
    seg = settings.live_segment_seconds
    lines = [f"stream {started['stream_id']} is waiting for its publisher "
             f"(ended if none connects within {settings.live_first_chunk_wait_s:g} s)", ""]
    if started["ingest"] == "rtmp":
        lines += ["OBS > Settings > Stream:  Service: Custom...",
                  f"  Server:      {urls.rtmp_server()}",
                  f"  Stream Key:  {started['ingest_key']}",
                  f"  (ffmpeg:     ffmpeg -re -i INPUT -c:v libx264 -g {round(seg * 30)} -c:a aac -f flv "
                  f"{urls.rtmp_server()}/{started['ingest_key']})"]
    else:
        lines += ["OBS > Settings > Stream:  Service: Custom...",
                  f"  Server:      {urls.srt_url(started['ingest_key'])}",
                  "  Stream Key:  (leave empty: the key is the SRT passphrase in the URL)"]
    lines += ["OBS > Settings > Output (Advanced) > Streaming:",
              "  Encoder: x264 (H.264), Audio: AAC,",
              f"  Keyframe Interval: {seg:g} s   <- the segment duration (LIVE_SEGMENT_SECONDS)",
              "",
              "Why the keyframe interval: the lab copies your video as it is (no transcoding), and a segment can",
              "only start on a keyframe. Every segment of the lab starts with one so a player can join at any",
              f"segment; with keyframes every {seg:g} s each segment is one GOP of {seg:g} s. Longer intervals make",
              "longer segments (more delay); with none at all the lab ends the stream with a clear error.",
              "",
              f"Watch it: GET /streams/{started['stream_id']}/live (lab.widgets.live_player in a notebook)."]
    return lines

