"""Checkers for the lessons' "Your turn" exercises, one module per lesson (`l01` … `l09`).

A checker takes the learner's answer (and what the lesson made: a stream id, a playlist) and returns a
`Verdict`: ✓ with what the answer showed, or a hint that names what is wrong and where to look. It never
raises: an answer of the wrong shape, or a service that does not answer, is a hint too. An untouched
exercise (its answer still `None`) gets the hint that says what to do, so a lesson run top to bottom, as
nbval runs it, shows a stable hint instead of failing. The solutions live in `instructor/solutions/`, outside
what JupyterLab serves.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from typing import Any, ParamSpec

P = ParamSpec("P")


class Verdict:
    """✓ or a hint: HTML in the notebook, one stable line as text (what nbval compares)."""

    def __init__(self, ok: bool, message: str):
        self.ok, self.message = ok, message

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"✓ {self.message}" if self.ok else f"hint: {self.message}"

    def _repr_html_(self) -> str:
        color, mark = ("#1b7f3b", "✓") if self.ok else ("#8a5300", "hint:")
        return (f'<div style="color:{color};font:13px/1.4 system-ui,sans-serif">'
                f"<b>{mark}</b> {html.escape(self.message)}</div>")


def passed(message: str) -> Verdict:
    return Verdict(True, message)


def hint(message: str) -> Verdict:
    return Verdict(False, message)


def first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def checker(func: Callable[P, Verdict]) -> Callable[P, Verdict]:
    """A checker never raises into the lesson: whatever goes wrong while checking becomes a hint."""

    @functools.wraps(func)
    def checked(*args: P.args, **kwargs: P.kwargs) -> Verdict:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            return hint(f"checking your answer failed with {first_line(exc)}; read it, fix the answer, and "
                        "run the cell again (if a service is down, `lab status` in a terminal says which)")

    return checked


def untouched(value: Any) -> bool:
    return value is None or value is ...
