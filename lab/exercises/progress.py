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
