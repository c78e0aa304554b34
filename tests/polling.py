"""Waiting in tests: poll a condition, fail with what was awaited (and, if given as a callable, what was seen)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], what: Callable[[], str] | str, timeout: float = 30.0,
             every: float = 0.2) -> T:
    """Poll until `predicate()` is truthy and return its value; an AssertionError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
