"""Settings: a bad value in .env is one readable line naming the variable, never a trace."""

from __future__ import annotations

import subprocess
import sys

from lab.config import ROOT


def run_with(env: dict[str, str]) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", "import lab.config"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **env})


def test_bad_port_names_the_variable():
    proc = run_with({"KAFKA_PORT": "ninety"})
    assert proc.returncode != 0
    assert "KAFKA_PORT" in proc.stderr and "Traceback" not in proc.stderr


def test_inverted_interval_is_refused():
    proc = run_with({"VOD_INTERVAL_MIN": "30", "VOD_INTERVAL_MAX": "10"})
    assert "VOD_INTERVAL_MIN must not exceed VOD_INTERVAL_MAX" in proc.stderr


def test_unknown_rendition_is_refused():
    proc = run_with({"VOD_LADDER": "720p,4k"})
    assert "VOD_LADDER" in proc.stderr and "4k" in proc.stderr


def test_placeholder_secret_refused_in_container_mode():
    proc = run_with({"LAB_MODE": "containers", "LAB_API_KEY": "changeme"})
    assert "LAB_API_KEY" in proc.stderr
