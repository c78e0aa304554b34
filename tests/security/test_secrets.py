"""Containers mode refuses every secret value committed in the repository's .env, not only "changeme"."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lab.config import ROOT, SECRET_SETTINGS


def committed_env() -> dict[str, str]:
    """The .env as committed (git's copy when there is one: a learner's edits are not what ships)."""
    try:
        text = subprocess.run(["git", "show", "HEAD:.env"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        text = (ROOT / ".env").read_text()
    values = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.strip().startswith("#"):
            values[name.strip()] = value.split("#", 1)[0].strip()
    return values


def import_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k.upper() not in {n.upper() for n in SECRET_SETTINGS}}
    clean.pop("LAB_ENV_FILE", None)
    return subprocess.run([sys.executable, "-c", "import lab.config"], cwd=ROOT, capture_output=True, text=True,
                          env={**clean, **env})


def real_secrets() -> dict[str, str]:
    return {name.upper(): f"a-real-secret-for-{name}-0123456789" for name in SECRET_SETTINGS}


def test_every_secret_setting_is_in_the_committed_env_or_defaults_to_it():
    env = committed_env()
    missing = [n.upper() for n in SECRET_SETTINGS if n.upper() not in env]
    assert not missing, f"add them to .env (with their defaults) so the check covers what ships: {missing}"


@pytest.mark.parametrize("name", [n.upper() for n in SECRET_SETTINGS])
def test_the_committed_value_of_each_secret_is_refused_in_containers_mode(name):
    proc = import_config({**real_secrets(), "LAB_MODE": "containers", name: committed_env()[name]})
    assert proc.returncode != 0 and name in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_real_secrets_are_accepted_in_containers_mode():
    proc = import_config({**real_secrets(), "LAB_MODE": "containers"})
    assert proc.returncode == 0, proc.stderr


def test_embedded_mode_keeps_the_shipped_development_values():
    assert import_config({"LAB_MODE": "embedded"}).returncode == 0
