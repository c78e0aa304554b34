"""The notebook's built-in copy of the main dashboard panels stays in step with the Grafana dashboard file
(a maintainer's check: it used to run in lesson 07, importing a private name)."""

from __future__ import annotations

import dataclasses

from lab.widgets import charts


def test_builtin_panels_match_the_dashboard_file() -> None:
    assert charts.DASHBOARD.exists(), f"{charts.DASHBOARD} is missing"
    panels = charts.dashboard_panels()
    for builtin in charts._BUILTIN:
        assert builtin.title in panels, f"the dashboard has no panel {builtin.title!r}"
        assert builtin.targets == panels[builtin.title].targets, f"{builtin.title!r}: queries drifted"


def test_rate_interval_expands_to_a_promql_duration() -> None:
    expanded = charts.expand("rate(x[$__rate_interval])")
    assert "$__" not in expanded and expanded.endswith("s])")
    assert dataclasses.is_dataclass(charts.Panel)
