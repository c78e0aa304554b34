"""Metric charts: PromQL against the Prometheus HTTP API, drawn with matplotlib.

The panels are read from the Grafana dashboard the container stack provisions
(`deploy/grafana/dashboards/pipeline.json`), so a notebook draws exactly the queries Grafana shows; if that
file is not there (an installed package), a built-in copy of the main panels is used.
"""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

import httpx
import pandas as pd

from lab.config import ROOT, settings
from lab.widgets._base import LabWidget, esc

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "pipeline.json"
UNITS = {"ops": "per second", "s": "seconds", "Bps": "bytes / s", "bytes": "bytes", "reqps": "requests / s",
         "short": "", None: ""}


class PromError(RuntimeError):
    """Prometheus refused a query; the message is its own error text."""


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[tuple[str, str], ...]  # (PromQL, legend format)
    unit: str | None = None
    description: str = ""


# The main panels, in case the dashboard file is not at hand (tests/unit/test_charts.py keeps them in step).
_BUILTIN = (
    Panel("Live: Chunk Processing Latency", (
        ('histogram_quantile(0.5, sum by (le) (rate(chunk_processing_latency_seconds_bucket{stream_type="live"}'
         '[$__rate_interval])))', "p50"),
        ('histogram_quantile(0.95, sum by (le) (rate(chunk_processing_latency_seconds_bucket{stream_type="live"}'
         '[$__rate_interval])))', "p95"),
        ('histogram_quantile(0.99, sum by (le) (rate(chunk_processing_latency_seconds_bucket{stream_type="live"}'
         '[$__rate_interval])))', "p99")), "s"),
    Panel("Live: Chunk Gaps Detected", (("sum(live_chunk_gaps_total)", "gaps"),), "short"),
    Panel("Checksum Failures", (("sum by (stream_type) (increase(chunk_checksum_failures_total"
                                 "[$__rate_interval]))", "{{stream_type}}"),), "short"),
    Panel("Consumer Lag (offsets behind latest, per Spark query)", (("max by (query) (kafka_consumer_lag)",
                                                                     "{{query}}"),), "short"),
    Panel("VOD: Processing Rate & Variants Generated", (
        ("sum by (stream_type) (rate(chunks_processed_total[$__rate_interval]))", "chunks {{stream_type}}"),
        ("sum by (rung) (rate(vod_variants_generated_total[$__rate_interval]))", "variants {{rung}}")), "ops"),
    Panel("Spark: Batch Duration p95 by Query", (
        ("histogram_quantile(0.95, sum by (le, query) (rate(spark_batch_duration_seconds_bucket"
         "[$__rate_interval])))", "{{query}}"),), "s"),
)


@cache
def dashboard_panels() -> dict[str, Panel]:
    """title -> Panel, from the Grafana dashboard JSON (its rows are skipped)."""
    if not DASHBOARD.exists():
        return {p.title: p for p in _BUILTIN}
    data = json.loads(DASHBOARD.read_text())
    panels = {}
    for p in data.get("panels", []):
        targets = tuple((t["expr"], t.get("legendFormat", "")) for t in p.get("targets", []) if t.get("expr"))
        if targets:
            unit = (p.get("fieldConfig") or {}).get("defaults", {}).get("unit")
            panels[p["title"]] = Panel(p["title"], targets, unit, p.get("description", ""))
    return panels


def panel(title: str) -> Panel:
    panels = dashboard_panels()
    if title not in panels:
        raise KeyError(f"panel: no panel titled {title!r}; known: {', '.join(panels)}")
    return panels[title]


def rate_window() -> str:
    """What Grafana's $__rate_interval becomes here: four scrape intervals, at least 15 s."""
    return f"{max(4 * settings.prometheus_scrape_interval_s, 15)}s"


def expand(expr: str) -> str:
    return expr.replace("$__rate_interval", rate_window())


def _api(path: str, params: dict) -> dict:
    resp = httpx.get(f"{settings.prometheus_base}/api/v1/{path}", params=params, timeout=15)
    body = resp.json()
    if body.get("status") != "success":
        raise PromError(f"{body.get('errorType', 'error')}: {body.get('error', resp.text[:200])}")
    return body["data"]


def instant(expr: str, at: float | None = None) -> pd.DataFrame:
    """An instant query (now, or at epoch seconds `at`): one row per series, its labels as columns and `value`."""
    data = _api("query", {"query": expand(expr)} | ({"time": f"{at:.3f}"} if at is not None else {}))
    rows = []
    for item in data["result"]:
        row = dict(item.get("metric", {}))
        row["value"] = float(item["value"][1])
        rows.append(row)
    return pd.DataFrame(rows)


def value(expr: str, default: float = 0.0) -> float:
    """An instant query summed over its series (`default` when there is none yet)."""
    frame = instant(expr)
    return float(frame["value"].sum()) if not frame.empty else default


def legend_for(fmt: str, labels: dict[str, str]) -> str:
    if not fmt:
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt).strip() or "value"


def range_frame(expr: str, minutes: float = 5, *, legend: str = "", step_s: float | None = None) -> pd.DataFrame:
    """A range query over the last `minutes`: a time index (UTC) and one column per series."""
    end = datetime.now(UTC)
    start = end - timedelta(minutes=minutes)
    step = step_s or max(settings.prometheus_scrape_interval_s, minutes * 60 / 150)
    data = _api("query_range", {"query": expand(expr), "start": start.timestamp(), "end": end.timestamp(),
                                "step": f"{step:g}"})  # float seconds: Prometheus refuses "1.2s"
    columns = {}
    for item in data["result"]:
        name = legend_for(legend, item.get("metric", {}))
        series = pd.Series({datetime.fromtimestamp(float(t), UTC): float(v) for t, v in item["values"]})
        columns[name] = series if name not in columns else columns[name].add(series, fill_value=0)
    return pd.DataFrame(columns).sort_index()


def panel_frames(p: Panel, minutes: float = 5) -> list[pd.DataFrame]:
    return [range_frame(expr, minutes, legend=legend) for expr, legend in p.targets]


def plot_panels(panels: list[str | Panel], minutes: float = 5, *, cols: int = 2):
    """Grafana's panels as a grid of line charts over the last `minutes`; returns the Figure."""
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    chosen = [panel(p) if isinstance(p, str) else p for p in panels]
    rows = (len(chosen) + cols - 1) // cols
    fig = Figure(figsize=(5.2 * cols, 2.7 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(chosen):]:
        ax.set_visible(False)
    for ax, p in zip(axes.flat, chosen, strict=False):
        drawn = 0
        for frame in panel_frames(p, minutes):
            for column in frame.columns:
                series = frame[column].dropna()
                if not series.empty:
                    ax.plot(series.index, series.values, label=column, linewidth=1.4)
                    drawn += 1
        if drawn == 0:
            ax.text(0.5, 0.5, f"no data in the last {minutes:g} min", ha="center", va="center",
                    transform=ax.transAxes, color="#888")
        elif drawn <= 8:
            ax.legend(fontsize=7, loc="upper left")
        ax.set_title(p.title, fontsize=9)
        ax.set_ylabel(UNITS.get(p.unit, p.unit or ""), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_formatter(DateFormatter("%H:%M:%S"))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def figure_png(fig, dpi: int = 80) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


class MetricCharts(LabWidget):
    """Dashboard panels redrawn every `interval` s while live."""

    title = "Metrics"

    def __init__(self, panels: list[str], minutes: float = 5, *, cols: int = 2, interval: float = 10.0,
                 auto: bool = False):
        self.panels, self.minutes, self.cols = panels, minutes, cols
        super().__init__(interval=interval, auto=auto)

    def render(self) -> str:
        fig = plot_panels(self.panels, self.minutes, cols=self.cols)
        data = base64.b64encode(figure_png(fig)).decode()
        return (f"<img src='data:image/png;base64,{data}' style='max-width:100%'>"
                f"<div style='font-size:11px;color:#666'>last {self.minutes:g} min from "
                f"{esc(settings.prometheus_base)}; rate window {rate_window()}</div>")
