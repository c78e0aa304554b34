"""Progress: a checker's ✓ recorded in the state dir (only in a lesson's kernel), `lab progress` per lesson,
--json and --merge for a room, and a lesson's Check yourself red until its exercises passed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.exercises import l08, progress
from lab.widgets import lesson


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(progress, "path", lambda: tmp_path / "progress.json")
    monkeypatch.setattr(progress, "ENABLED", True)
    monkeypatch.setattr(progress, "CALLED", set())
    return tmp_path / "progress.json"


def test_nothing_is_recorded_outside_a_lesson(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "path", lambda: tmp_path / "progress.json")
    assert l08.kill_moment(12)
    assert not (tmp_path / "progress.json").exists()


def test_a_pass_is_recorded_a_hint_is_not(state: Path) -> None:
    assert not l08.kill_moment(3)
    assert not state.exists()
    assert l08.kill_moment(12)
    assert progress.passed("l08", "kill_moment") and not progress.passed("l08", "proof")
    assert progress.missing("l08") == ["Your turn 2 (proof)"]
    line = next(x for x in progress.lines(progress.report()) if x.startswith("08"))
    assert "1/2" in line and "✓ 1. kill_moment" in line and "· 2. proof" in line


def test_check_yourself_stays_red_until_the_lessons_exercises_pass(state: Path, capsys) -> None:
    l08.kill_moment(12)  # the lesson's kernel ran an 08 checker
    lesson.ok("the stack recovered")
    assert capsys.readouterr().out.startswith("✗ the stack recovered; still to pass: 08 Your turn 2 (proof)")
    assert l08.proof(lambda indexes, last: sorted(indexes) == list(range(last + 1)), [0, 1], 1)
    lesson.ok("the stack recovered")
    assert capsys.readouterr().out.strip() == "✓ the stack recovered"
    assert "#b3261e" in lesson.CheckLine("x", ["08 Your turn 2 (proof)"])._repr_html_()


def test_a_room_merges_into_one_table(state: Path, tmp_path: Path) -> None:
    empty = progress.report()
    l08.kill_moment(12)
    one = progress.report()
    files = []
    for n, (who, data) in enumerate((("ana@laptop1", one), ("bo@laptop2", empty))):
        files.append(tmp_path / f"{n}.json")
        files[-1].write_text(json.dumps(dict(data, learner=who)))
    rows = progress.merge(files)
    assert rows[0].split()[:3] == ["learner", "01.1", "01.2"]
    ana, bo, room = rows[1], rows[2], rows[3]
    assert ana.startswith("ana@laptop1") and ana.endswith("1/21") and bo.endswith("0/21")
    assert room.startswith("room") and room.endswith("of 2")
