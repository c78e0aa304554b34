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

    def __init__(self, ok: bool, message: str, *, broken: bool = False, table: Any = None):
        self.ok, self.message, self.broken = ok, message, broken
        self.table = table  # a pandas DataFrame of what the real system did, shown under the verdict

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"✓ {self.message}" if self.ok else f"hint: {self.message}"

    def _repr_html_(self) -> str:
        color, mark = ("#1b7f3b", "✓") if self.ok else ("#8a5300", "hint:")
        table = "" if self.table is None else self.table.to_html(index=False, border=0)
        return (f'<div style="color:{color};font:13px/1.4 system-ui,sans-serif">'
                f"<b>{mark}</b> {html.escape(self.message)}</div>{table}")


def passed(message: str, table: Any = None) -> Verdict:
    return Verdict(True, message, table=table)


def hint(message: str, table: Any = None) -> Verdict:
    return Verdict(False, message, table=table)


def first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Unreachable(Exception):
    """A service the checker needs did not answer (raised by a checker, turned into a hint naming it)."""


def _service_error(exc: BaseException) -> str | None:
    """Which service an exception says is away, if it is that kind of error."""
    import httpx

    if isinstance(exc, Unreachable):
        return str(exc)
    if isinstance(exc, httpx.TransportError):
        return f"the API or Prometheus did not answer ({type(exc).__name__})"
    if type(exc).__module__.startswith(("confluent_kafka", "cimpl")):
        return f"Kafka did not answer ({first_line(exc)})"
    if type(exc).__module__.startswith(("botocore", "pymongo")):
        return f"{'S3' if 'botocore' in type(exc).__module__ else 'the catalog'} did not answer ({type(exc).__name__})"
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return f"a service did not answer in time ({first_line(exc)})"
    return None


def checker(func: Callable[P, Verdict]) -> Callable[P, Verdict]:
    """A checker never raises into the lesson: a service that does not answer is a hint naming it; anything
    else is the checker's own bug, said as such (the wrong-answer banks in tests/ keep every answer a learner
    can give on a specific hint)."""

    from lab.exercises import progress

    lesson = func.__module__.rsplit(".", 1)[-1]
    if func.__module__.startswith("lab.exercises.l"):  # a lesson's exercise (not a test's checker)
        progress.register(lesson, func.__name__)

    @functools.wraps(func)
    def checked(*args: P.args, **kwargs: P.kwargs) -> Verdict:
        progress.CALLED.add(lesson)
        try:
            verdict = func(*args, **kwargs)
        except Exception as exc:
            away = _service_error(exc)
            if away:
                return hint(f"{away}: the checker could not look at the real system. `lab status` in a "
                            "terminal says which service is down; run this cell again once it is up")
            return Verdict(False, f"the checker itself broke ({first_line(exc)}); tell the instructor",
                           broken=True)
        if verdict.ok:
            progress.record(lesson, func.__name__)
        return verdict

    return checked


def untouched(value: Any) -> bool:
    return value is None or value is ...


def kind(value: Any) -> str:
    """A value's type as a hint names it: 'a str', 'a bool', 'a numpy bool', 'a LiveChunkEvent (a pydantic
    model)'."""
    cls = type(value)
    if hasattr(value, "model_dump") and hasattr(cls, "model_fields"):
        return f"a {cls.__name__} (a pydantic model)"
    if cls.__module__ == "numpy":
        return f"a numpy {cls.__name__.rstrip('_')}"
    article = "an" if cls.__name__[:1] in "aeiou" else "a"
    return f"{article} {cls.__name__}"


def is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ in ("bool_", "bool") and type(value).__module__ == "numpy"


def is_int(value: Any) -> bool:
    """An int, or a numpy integer; never a bool (True == 1 to Python, not to a learner's prediction)."""
    import numbers

    return isinstance(value, numbers.Integral) and not is_bool(value)


def int_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(is_int(i) for i in value)


def not_an_int(name: str, value: Any, example: str) -> Verdict:
    """The hint for an answer that should be an int, naming what it is instead."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return hint(f"{name} is the string {value!r}: write the number itself, {int(value)}, without quotes")
    if is_bool(value):
        return hint(f"{name} is {kind(value)} ({value!r}), not a number: write an int such as {example}")
    return hint(f"{name} is {kind(value)}, not an int: write one such as {example}")


def not_an_int_list(name: str, value: Any, example: str) -> Verdict:
    if isinstance(value, (list, tuple, set)):
        odd = next((i for i in value if not is_int(i)), None)
        if isinstance(value, set):
            return hint(f"{name} is a set; make it a list, such as {example}")
        return hint(f"{name} holds {odd!r}, {kind(odd)}: every item is an int, such as {example}")
    return hint(f"{name} is {kind(value)}, not a list of ints: write one such as {example}")


def call(func: Callable[..., Any], *args: Any, name: str, case: str) -> tuple[Any, Verdict | None]:
    """Run the learner's function; its exception becomes a hint naming the case it was run on."""
    try:
        return func(*args), None
    except Exception as exc:
        return None, hint(f"your {name} raised {first_line(exc)} on {case}: fix it and run the cell again")
