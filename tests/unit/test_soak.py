"""The soak's arithmetic: live latency quantiles from two histogram readings, and the hourly table."""

from __future__ import annotations

from lab import soak

TEXT = """# HELP chunk_processing_latency_seconds Publish to processed
chunk_processing_latency_seconds_bucket{stream_type="live",le="0.1"} 0.0
chunk_processing_latency_seconds_bucket{stream_type="live",le="0.25"} 50.0
chunk_processing_latency_seconds_bucket{stream_type="live",le="0.5"} 90.0
chunk_processing_latency_seconds_bucket{stream_type="live",le="1.0"} 100.0
chunk_processing_latency_seconds_bucket{stream_type="live",le="+Inf"} 100.0
chunk_processing_latency_seconds_bucket{stream_type="vod",le="0.1"} 7.0
"""


def test_histogram_lines_of_the_live_stream_type_only():
    assert soak.parse_buckets(TEXT) == {0.1: 0.0, 0.25: 50.0, 0.5: 90.0, 1.0: 100.0, float("inf"): 100.0}


def test_quantiles_of_the_interval_between_two_readings():
    after = soak.parse_buckets(TEXT)
    assert soak.quantile(0.5, {}, after) == 0.25                         # 50th of 100 ends the 0.1-0.25 bucket
    assert abs(soak.quantile(0.99, {}, after) - 0.95) < 1e-9             # inside 0.5-1.0, interpolated
    before = {0.1: 0.0, 0.25: 50.0, 0.5: 50.0, 1.0: 50.0, float("inf"): 50.0}
    assert 0.25 < soak.quantile(0.5, before, after) <= 0.5               # the interval's 50 are all 0.25-1.0
    assert soak.quantile(0.5, after, after) is None                      # nothing observed: no figure


def test_hourly_table_takes_medians_and_the_last_counters():
    rows = [{"sim_minute": m, "live_p50_ms": 200 + m % 2, "live_p99_ms": "", "read_vod_doc_ms": 0.5,
             "read_vod_chunks_ms": 3, "read_stream_list_ms": 10, "lab_status_ms": 40, "docs_live": m * 10,
             "rss_mib_total": 3000 + m, "restarts": 0} for m in range(1, 121)]
    table = soak.hourly(rows)
    assert [r["hour"] for r in table] == [1, 2]
    assert table[0]["live p50 ms"] == "200.5" and table[0]["live p99 ms"] == "-"
    assert table[1]["docs"] == 1200 and table[1]["RSS MiB"] == 3120
