"""What a learner has passed: each checker's ✓ recorded in the lab's state dir (`progress.json`).

`lab progress` prints it per lesson, `lab progress --json` gives it to an instructor, and `lab progress merge
FILE...` puts a room's files into one table. Recording is on in a lesson's kernel only (`lesson.setup()`), so
the checks the test suite runs are nobody's progress.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

ENABLED = False
EXERCISES: dict[str, list[str]] = {}  # lesson module (l01) -> its checkers, in the order they are defined


def register(lesson: str, exercise: str) -> None:
    EXERCISES.setdefault(lesson, [])
    if exercise not in EXERCISES[lesson]:
        EXERCISES[lesson].append(exercise)


def path() -> Path:
    from lab.config import settings

    return settings.lab_state_dir / "progress.json"


def load(source: Path | None = None) -> dict[str, dict[str, float]]:
    target = source or path()
    try:
        data = json.loads(target.read_text())
    except FileNotFoundError:
        return {}
    return data.get("passed", {}) if isinstance(data, dict) else {}


def record(lesson: str, exercise: str) -> None:
    if not ENABLED:
        return
    passed = load()
    passed.setdefault(lesson, {}).setdefault(exercise, time.time())
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_suffix(f".{os.getpid()}.tmp")
    scratch.write_text(json.dumps({"passed": passed}, indent=1, sort_keys=True))
    scratch.replace(target)  # atomic: two kernels recording at once never leave half a file


def passed(lesson: str, exercise: str) -> bool:
    return exercise in load().get(lesson, {})


CALLED: set[str] = set()  # lessons whose checkers ran in this process (a lesson's kernel runs its own)
TITLES = {"l01": "Kafka", "l02": "the control plane", "l03": "Spark", "l04": "VOD", "l05": "live", "l06": "trace",
          "l07": "observability", "l08": "recovery", "l09": "the read path"}


def _registered() -> dict[str, list[str]]:
    import importlib

    for lesson in TITLES:
        importlib.import_module(f"lab.exercises.{lesson}")  # each registers its checkers as it is defined
    return {lesson: EXERCISES[lesson] for lesson in TITLES if lesson in EXERCISES}


def missing(lesson: str, passed_now: dict[str, dict[str, float]] | None = None) -> list[str]:
    """The exercises of `lesson` (l01) not passed yet, as 'Your turn N (name)'."""
    done = (passed_now if passed_now is not None else load()).get(lesson, {})
    return [f"Your turn {n} ({name})" for n, name in enumerate(_registered().get(lesson, []), 1) if name not in done]


def report(source: Path | None = None) -> dict:
    """What `lab progress --json` prints: who, and per lesson each exercise with passed true or false."""
    import getpass
    import socket

    done = load(source)
    return {"learner": f"{getpass.getuser()}@{socket.gethostname()}",
            "lessons": {lesson[1:]: {name: name in done.get(lesson, {}) for name in names}
                        for lesson, names in sorted(_registered().items())}}


def lines(data: dict) -> list[str]:
    """`lab progress`: one line per lesson."""
    out = []
    for number, exercises in data["lessons"].items():
        marks = ", ".join(f"{'✓' if ok else '·'} {n}. {name}" for n, (name, ok) in enumerate(exercises.items(), 1))
        count = sum(exercises.values())
        out.append(f"{number} {TITLES.get('l' + number, ''):<18} {count}/{len(exercises)}  {marks}")
    return out


def merge(paths: list[Path]) -> list[str]:
    """A room's `lab progress --json` files as one table: a row per learner, a column per exercise (01.1 …)."""
    reports = [json.loads(p.read_text()) for p in paths]
    columns = sorted({f"{lesson}.{n}" for r in reports for lesson, ex in r["lessons"].items()
                      for n in range(1, len(ex) + 1)})
    width = max([len("learner"), *(len(r["learner"]) for r in reports)])
    rows = [f"{'learner':<{width}}  " + " ".join(columns) + "  passed"]
    for r in sorted(reports, key=lambda r: r["learner"]):
        cells = {f"{lesson}.{n}": ok for lesson, ex in r["lessons"].items() for n, ok in enumerate(ex.values(), 1)}
        marks = " ".join(f"{'✓' if cells.get(c) else '·':^{len(c)}}" for c in columns)
        rows.append(f"{r['learner']:<{width}}  {marks}  {sum(cells.values())}/{len(cells)}")
    done = [sum(1 for r in reports if dict(
        (f"{lesson}.{n}", ok) for lesson, ex in r["lessons"].items() for n, ok in enumerate(ex.values(), 1)).get(c))
        for c in columns]
    rows.append(f"{'room':<{width}}  " + " ".join(f"{d:^{len(c)}}" for d, c in zip(done, columns, strict=True))
                + f"  of {len(reports)}")
    return rows
