"""Lesson 07 (observability): PromQL written for a stated question, checked against Prometheus itself."""

from __future__ import annotations

import math
import time
from typing import Any

from lab.exercises import Verdict, checker, hint, passed, untouched

QUESTIONS = {
    "live_rate": ("live chunks processed per second, averaged over the last minute",
                  'sum(rate(chunks_processed_total{stream_type="live"}[1m]))'),
    "gaps_10m": ("chunk gaps the live query detected in the last 10 minutes",
                 "sum(increase(live_chunk_gaps_total[10m]))"),
}


def _result(expr: str, at: float) -> dict[tuple, float]:
    from lab.widgets.charts import instant

    frame = instant(expr, at=at)
    if frame.empty:
        return {}
    labels = [c for c in frame.columns if c != "value"]
    return {tuple(sorted((c, r[c]) for c in labels if isinstance(r[c], str))): float(r["value"])
            for _, r in frame.iterrows()}


@checker
def promql(question: str, expr: Any) -> Verdict:
    from lab.widgets.charts import PromError

    asked, reference = QUESTIONS[question]
    if untouched(expr):
        return hint(f"set the PromQL for: {asked}. Start from the metric's name, then pick rate(), increase() or "
                    "histogram_quantile(), then sum")
    if not isinstance(expr, str) or not expr.strip():
        return hint("the answer is a PromQL expression, as a string")
    at = time.time()  # both evaluated at the same instant: same data, so equal answers give equal numbers
    try:
        mine = _result(expr, at)
    except PromError as exc:
        return hint(f"Prometheus refused it: {exc}")
    wanted = _result(reference, at)
    if not wanted:
        return hint("Prometheus has no data for this question yet: let the traffic above run, then run this again")
    if set(mine) != set(wanted):
        shape = "one number" if list(wanted) == [()] else f"one series per {', '.join(k for k, _ in list(wanted)[0])}"
        return hint(f"the answer should be {shape}; yours has {len(mine)} series with labels "
                    f"{sorted({k for key in mine for k, _ in key}) or 'none'}: sum() them (by the label asked for)")
    off = [k for k in wanted if not math.isclose(mine[k], wanted[k], rel_tol=0.01, abs_tol=1e-9)]
    if off:
        return hint(f"right shape, different number ({mine[off[0]]:g} instead of {wanted[off[0]]:g}): check the "
                    "metric, its label filter and the time window")
    return passed(f"{expr} answers '{asked}': {', '.join(f'{v:g}' for v in mine.values())} now")
