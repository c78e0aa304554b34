"""Every metric the Grafana dashboard and the Prometheus rules read is one the running code exports.

Checked against the live /metrics of the embedded API: every lab process imports lab/metrics.py, so the
API's exposition has the HELP/TYPE lines of every lab metric, labelled ones included, even before they
have samples. Metrics of the exporters (kafka-exporter, mongodb-exporter) and Prometheus' own `up` are
listed by name in tests/unit/test_compose.py (EXTERNAL_METRICS). Each expression is also sent to the test
stack's real Prometheus, so a PromQL syntax error in a panel fails here and not in front of a class.
"""

from __future__ import annotations

import re

import httpx
import pytest

from lab.config import settings
from tests.unit.test_compose import (
    EXTERNAL_METRICS,
    dashboard_exprs,
    exported_series_names,
    missing_metrics,
    referenced_metrics,
    rule_exprs,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]


@pytest.fixture(scope="module")
def exposition() -> str:
    response = httpx.get(f"{settings.api_base}/metrics", timeout=10.0)
    assert response.status_code == 200, f"GET {settings.api_base}/metrics answered {response.status_code}"
    return response.text


def test_api_metrics_list_every_lab_metric(exposition):
    """The premise of the check below: the API's /metrics carries every family of lab/metrics.py."""
    from prometheus_client import REGISTRY, generate_latest

    import lab.metrics  # noqa: F401

    in_process = exported_series_names(generate_latest(REGISTRY).decode())
    live = exported_series_names(exposition)
    lab_families = {n for n in in_process if not n.startswith(("python_", "process_"))}
    assert not lab_families - live, f"the API does not export: {sorted(lab_families - live)}"


def test_every_dashboard_and_rule_metric_is_exported_by_the_api(exposition):
    missing = missing_metrics(exposition)
    assert not missing, "metrics read by the dashboard/rules but exported by no lab process: " + ", ".join(
        f"{name} (in {', '.join(sorted(files))})" for name, files in sorted(missing.items()))
    used = referenced_metrics()
    assert set(used) - set(EXTERNAL_METRICS), "the dashboard reads no lab metric at all"


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_expression_is_valid_promql(source):
    exprs = dashboard_exprs() if source == "dashboard" else rule_exprs()
    errors = []
    for expr in exprs:
        # Grafana's interval variables are not PromQL: give them the value Grafana would
        query = re.sub(r"\$\{?__(rate_)?interval\}?", "1m", expr)
        body = httpx.get(f"{settings.prometheus_base}/api/v1/query", params={"query": query},
                         timeout=10.0).json()
        if body.get("status") != "success":
            errors.append(f"{expr}\n    -> {body.get('errorType')}: {body.get('error')}")
    assert not errors, "Prometheus refuses:\n" + "\n".join(errors)
