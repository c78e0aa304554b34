"""Pinned versions of every service, read from `[tool.lab.versions]` in pyproject.toml (the one place)."""

from __future__ import annotations

import tomllib
from functools import cache

from lab.config import ROOT


@cache
def pins() -> dict[str, str]:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return dict(tomllib.load(fh)["tool"]["lab"]["versions"])


def pin(name: str) -> str:
    return pins()[name]


def pyspark_version() -> str:
    import pyspark

    return pyspark.__version__
