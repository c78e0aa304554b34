"""The one way the lab waits for something: poll a condition, fail with what was awaited.

Lessons (`lesson.wait_for`), widgets and tests all use it; it depends on nothing else in the lab.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], what: Callable[[], str] | str, timeout: float = 60.0,
             every: float = 0.2) -> T:
    """Poll until `predicate()` is truthy and return its value. Otherwise a TimeoutError naming `what`; when
    `what` is a callable it is called then, so the message can say what was seen instead."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}")
        time.sleep(every)
