"""Lesson 07 solutions."""

LIVE_RATE = 'sum(rate(chunks_processed_total{stream_type="live"}[1m]))'
GAPS_10M = "sum(increase(live_chunk_gaps_total[10m]))"
