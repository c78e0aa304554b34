"""Going live from outside the lab, and making sure every live stream ends.

- registry: the open streams (started, not ended): their ingest keys, their publishers' heartbeats, ends asked for.
- reaper: ends a stream whose publisher went silent, or whose end Kafka refused, through the same end marker.
- listeners, pieces, service: OBS (RTMP, SRT) and the browser camera (HTTP pieces) into the same segments the
  lab's encoder makes, published through the same `LiveStream` (lab/producer/stream.py).
"""
