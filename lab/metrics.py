"""Every Prometheus metric the lab exports, in one place (names from the reference, and more where useful).

Each process (API, producer, each Spark query) serves `/metrics`; Prometheus tells them apart by `job`.
Labelled series appear once they are first used.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 120, 300)

# --- producer -------------------------------------------------------------------------------------
producer_messages = Counter("producer_messages", "Chunk events published to Kafka", ["stream_type"])
producer_bytes = Counter("producer_bytes", "Segment bytes uploaded to S3 by the producer", ["stream_type"])
producer_delivery_failures = Counter("producer_delivery_failures", "Events Kafka finally refused", ["stream_type"])
live_streams_started = Counter("live_streams_started", "Live streams started by the encoder")
live_streams_reaped = Counter("live_streams_reaped", "Live streams the pipeline ended for their "
                              "publisher (silence, or an end Kafka first refused)", ["reason"])
live_segments_dropped = Counter("live_segments_dropped", "Live segments a publisher dropped from its full "
                                "backlog (S3 or Kafka away too long): gaps")
live_segment_retries = Counter("live_segment_retries", "Failed hand-overs of a live segment, retried")

# --- Spark queries --------------------------------------------------------------------------------
chunks_processed = Counter("chunks_processed", "Chunk events processed", ["stream_type"])
chunk_processing_latency = Histogram(
    "chunk_processing_latency_seconds", "Publish to processed (live: in the playlist; VOD: all rungs uploaded)",
    ["stream_type"], buckets=LATENCY_BUCKETS)
live_chunk_gaps = Counter("live_chunk_gaps", "Missing live sequence numbers detected (a gap of 3 adds 3)")
chunk_checksum_failures = Counter("chunk_checksum_failures", "Segments whose SHA-256 did not match", ["stream_type"])
dead_letters = Counter("dead_letter_events", "Events sent to the dead-letter topic", ["source_topic"])
vod_transcode_seconds = Histogram(
    "vod_transcode_seconds", "Wall seconds of the one ffmpeg run that encodes a segment to every rung, per segment",
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64))
vod_streams = Counter("vod_streams_finished", "VOD streams finished", ["status"])
vod_processing_latency = Histogram("vod_processing_latency_seconds", "Upload to ready, per stream",
                                   buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800))
variants_generated = Counter("vod_variants_generated", "Rendition segments written", ["rung"])
playlist_writes = Counter("playlist_writes", "Playlists written to the manifests bucket", ["kind"])
batch_duration = Histogram("spark_batch_duration_seconds", "Wall time of one foreachBatch call", ["query"],
                           buckets=LATENCY_BUCKETS)
live_batch_stage = Histogram("live_batch_stage_seconds", "Where a live batch spends its time, per stage",
                             ["stage"], buckets=LATENCY_BUCKETS)
consumer_lag = Gauge("kafka_consumer_lag",
                     "Records on the broker a query has not processed yet (latest offset - its last batch's end)",
                     ["query"])
consumer_lag_measured = Gauge("kafka_consumer_lag_measured_timestamp_seconds",
                              "When kafka_consumer_lag was last measured (it is absent while it cannot be)",
                              ["query"])
offsets_skipped = Counter("kafka_offsets_skipped", "Offsets a query's batch covered that delivered no record "
                          "(expired before they were read: failOnDataLoss=false reads on)", ["query"])
live_duplicates_skipped = Counter("live_duplicates_skipped", "Live chunks a batch found already recorded in the "
                                  "catalog (a batch run again after a crash, or a chunk published twice): "
                                  "skipped, never recorded twice")
live_replayed_events = Counter("live_replayed_events", "Live events a replayed batch found already applied "
                               "by the stream's state (skipped, not recorded twice)")

# --- catalog and API ------------------------------------------------------------------------------
catalog_operations = Counter(
    "catalog_operations", "Catalog writes and reads, one per database call (a bulk_write or insert_many of many "
    "documents counts once); operation: read, insert, update or delete", ["collection", "operation"])
api_requests = Counter("api_requests", "HTTP requests", ["method", "route", "status"])
api_request_latency = Histogram("api_request_duration_seconds", "HTTP request latency", ["method", "route"],
                                buckets=LATENCY_BUCKETS)
bucket_bytes = Gauge("s3_bucket_bytes", "Bytes stored per bucket (sampled by the API)", ["bucket"])
bucket_objects = Gauge("s3_bucket_objects", "Objects stored per bucket (sampled by the API)", ["bucket"])


def serve(port: int, host: str = "0.0.0.0") -> None:
    """Expose /metrics from a process that has no web server of its own (producer, Spark driver)."""
    start_http_server(port, addr=host)
