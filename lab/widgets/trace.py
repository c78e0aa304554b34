"""Chunk-trace timeline: the hops of one chunk through the pipeline as horizontal bars on one time axis.

A hop has a start and an end in epoch milliseconds, measured where it happens (the encoder's clock, Kafka's
record timestamp, the Spark job's writes in the catalog, the player's fetch): all on this machine's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

PALETTE = ("#5c6bc0", "#26a69a", "#ffa726", "#ab47bc", "#ef5350", "#8d6e63", "#29b6f6", "#9ccc65")


@dataclass(frozen=True)
class Hop:
    name: str
    start_ms: float
    end_ms: float
    detail: str = ""

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms


def trace_frame(hops: Sequence[Hop]) -> pd.DataFrame:
    """hop, starts at (ms after the first hop began), takes (ms), detail."""
    t0 = min(h.start_ms for h in hops)
    return pd.DataFrame([{"hop": h.name, "starts at ms": round(h.start_ms - t0, 1),
                          "takes ms": round(h.duration_ms, 1), "detail": h.detail} for h in hops])


def plot_trace(hops: Sequence[Hop], title: str = "one chunk through the pipeline", *, ax=None):
    """Draw the hops top to bottom; returns the matplotlib Figure (a notebook displays it once: it is made
    without pyplot, so no global figure is left behind to be shown a second time)."""
    from matplotlib.figure import Figure

    if not hops:
        raise ValueError("hops: nothing to draw")
    t0 = min(h.start_ms for h in hops)
    end = max(h.end_ms for h in hops) - t0
    if ax is None:
        fig = Figure(figsize=(10, 0.55 * len(hops) + 1.3))
        ax = fig.subplots()
    else:
        fig = ax.figure
    for row, hop in enumerate(hops):
        start = hop.start_ms - t0
        width = max(hop.duration_ms, end * 0.004)  # an instant still shows as a sliver
        ax.barh(row, width, left=start, color=PALETTE[row % len(PALETTE)], height=0.6)
        label = f"{hop.duration_ms:.0f} ms" + (f" · {hop.detail}" if hop.detail else "")
        inside = width > end * 0.35
        ax.text(start + (width / 2 if inside else width + end * 0.01), row, label, va="center",
                ha="center" if inside else "left", fontsize=8, color="white" if inside else "#222")
    ax.set_yticks(range(len(hops)), [h.name for h in hops])
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds since the first hop began")
    ax.set_xlim(0, end * 1.45 if end > 0 else 1)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
