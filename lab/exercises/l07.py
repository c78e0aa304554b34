"""Lesson 07 (observability): PromQL written for a stated question, judged by Prometheus itself.

Prometheus parses the learner's expression and prints it in its canonical form (`/api/v1/format_query`: the
same spacing, `[60s]` as `[1m]`, label matchers as written); the checker compares a SHA-256 of that form with
the hashes of the accepted answers, so no answer is kept here to read. A value comparison would not do: with
no gap in the last ten minutes many wrong expressions answer 0, as the right one does. The hints come from the
learner's own expression (which function, window, filter and aggregation it has), and the ✓ shows its value.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from lab.exercises import Verdict, checker, hint, kind, passed, untouched

# question -> (what is asked, the function and window its words name, SHA-256 of the counter it is about and of
# the label matcher it needs, SHA-256 of the canonical forms accepted)
QUESTIONS = {
    "live_rate": ("live chunks processed per second, averaged over the last minute", "rate", "1m",
                  "72141bc21cea6e2d45497a627a1d32c3d98287e9cd4bc93fae1a61449083c5f4",
                  "978b736d72e422890a625e478c741f40ab7acbd62320ee17b0072e3e64a435f8",
                  frozenset({"876e5ec606ee11c55f8fa188fa8844bcd17bcb48d2dfeca18feade993a9058b3"})),
    "gaps_10m": ("chunk gaps the live query detected in the last 10 minutes, every stream", "increase", "10m",
                 "f0bf84062c37b5fdc036515e7e18d23892032eca29fb690b179b25d2fe2567dc", None,
                 frozenset({"460c4439d2dafb752a9e2b13f996a43a1a293f0f7b28dd20ca0c2288ca319018"})),
}
ABOUT = {"live_rate": "the counter of processed chunks", "gaps_10m": "the counter of detected gaps"}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def canonical(expr: str) -> str:
    """Prometheus's own formatting of `expr` (raises PromError with its parse error)."""
    from lab.widgets.charts import _api

    return str(_api("format_query", {"query": expr}))


def digest(expr: str) -> str:
    return _sha(canonical(expr))


def evaluate(expr: str) -> tuple[str, list[float]]:
    """Prometheus's answer now: its result type and values (a scalar is one value)."""
    from lab.widgets.charts import _api

    data = _api("query", {"query": expr})
    if data["resultType"] == "scalar":
        return "scalar", [float(data["result"][1])]
    if data["resultType"] == "vector":
        return "vector", [float(item["value"][1]) for item in data["result"]]
    return data["resultType"], []


def _shape_hint(question: str, text: str, result_type: str, values: list[float]) -> str:
    """What the learner's expression (canonical `text`) lacks for the question, most basic first."""
    _, function, window, metric, label, _ = QUESTIONS[question]
    functions = set(re.findall(r"\b([a-z_]+)\s*\(", text))
    windows = re.findall(r"\[([0-9a-z]+)\]", text)
    names = {_sha(n) for n in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text)}
    matchers = {_sha(m.replace(" ", "")) for m in re.findall(r'\w+\s*=\s*"[^"]*"', text)}
    if metric not in names:
        return (f"the question is about {ABOUT[question]}: find its name in the scrape list above (a counter's "
                "name ends in _total); yours does not read it")
    if function not in functions:
        used = sorted(functions & {"rate", "irate", "increase", "delta", "deriv", "idelta"}) or ["none"]
        what = "per second, averaged over a window" if function == "rate" else "how much a counter grew in a window"
        return f"{what} is {function}(); yours uses {', '.join(used)}"
    if windows != [window]:
        return f"the window the question names is [{window}]; yours has {windows or 'none'}"
    if label and label not in matchers:
        return "only live chunks count: filter the series by the label that says which kind of stream, {…=\"…\"}"
    if result_type == "scalar" or "scalar" in functions:
        return "the answer is a one-series vector: sum() the series, rather than scalar()"
    if not text.startswith("sum(") or " by " in text or " without " in text:
        return (f"the answer is one number for every stream: sum() the {function}() of all series, with no by(); "
                f"yours gives {len(values)} series" + (" (sum after rate, never rate after sum)" if "sum" in text
                                                         else ""))
    return "Prometheus runs it, but it is not an answer to the question as asked: read the question again"


def _promql(question: str, expr: Any, name: str) -> Verdict:
    from lab.widgets.charts import PromError

    asked, *_, accepted = QUESTIONS[question]
    if untouched(expr):
        return hint(f"set {name} to the PromQL for: {asked}. Start from the metric's name, then pick rate(), "
                    "increase() or histogram_quantile(), then sum")
    if not isinstance(expr, str) or not expr.strip():
        return hint(f"{name} is {kind(expr)}: it is a PromQL expression, as a str (in quotes)")
    try:
        text = canonical(expr)
        result_type, values = evaluate(expr)
    except PromError as exc:
        return hint(f"Prometheus refused it: {exc}")
    if _sha(text) not in accepted:
        return hint(_shape_hint(question, text, result_type, values))
    now = f"{values[0]:g}" if values else "no data yet (it is right: the data comes once traffic runs)"
    return passed(f"{text} answers '{asked}': {now} now")


@checker
def live_rate(expr: Any) -> Verdict:
    return _promql("live_rate", expr, "LIVE_RATE")


@checker
def gaps_10m(expr: Any) -> Verdict:
    return _promql("gaps_10m", expr, "GAPS_10M")
