"""The lesson build: sources to notebooks with jupytext (a learner's copy has no outputs), staging for the tests
(the reference outputs of instructor/outputs/, stale references refused), restoring a learner's copy."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from lab import lessons

SOURCE = '''# %% [markdown]
# # 99 · A lesson
#
# Some text.

# %%
x = 1
x

# %% tags=["nbval-ignore-output"]
print(x)
'''


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "99_lesson.py").write_text(SOURCE)
    monkeypatch.setattr(lessons, "NOTEBOOKS", tmp_path)
    monkeypatch.setattr(lessons, "SRC", tmp_path / "src")
    monkeypatch.setattr(lessons, "OUTPUTS", tmp_path / "outputs")
    return tmp_path


def executed(tree: Path) -> nbformat.NotebookNode:
    """The lesson as `_build.py --execute` leaves it: run, with outputs, in the reference folder."""
    nb = nbformat.read(lessons.build(lessons.SRC / "99_lesson.py", lessons.OUTPUTS), as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "1"}, execution_count=1)]
    nb.cells[1].execution_count = 1
    nbformat.write(nb, lessons.OUTPUTS / "99_lesson.ipynb")
    return nb


def test_build_gives_stable_cells_tags_and_no_outputs(tree: Path) -> None:
    nb = nbformat.read(lessons.build(lessons.SRC / "99_lesson.py"), as_version=4)
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code"]
    assert [c.id for c in nb.cells] == ["c00", "c01", "c02"]
    assert nb.cells[0].source.startswith("# 99 · A lesson")
    assert nb.cells[2].metadata["tags"] == ["nbval-ignore-output"] and nb.cells[1].outputs == []
    assert "jupytext" not in nb.metadata and nb.metadata["kernelspec"]["name"] == "python3"


def test_stage_carries_the_reference_outputs_whatever_the_learner_did(tree: Path, tmp_path: Path) -> None:
    executed(tree)
    (tree / "99_lesson.ipynb").write_text('{"edited by a learner": true}')
    staged = lessons.stage(tmp_path / "staged")
    nb = nbformat.read(staged[0], as_version=4)
    assert nb.cells[1].outputs[0]["data"]["text/plain"] == "1"
    # nbval refuses a reference cell with outputs and no execution_count ("Unrun reference cell has outputs")
    assert nb.cells[1].execution_count == 1


def test_stage_refuses_a_notebook_stale_against_its_source(tree: Path, tmp_path: Path) -> None:
    executed(tree)
    (lessons.SRC / "99_lesson.py").write_text(SOURCE.replace("x = 1", "x = 2"))
    with pytest.raises(lessons.LessonError, match="stale"):
        lessons.stage(tmp_path / "staged")


def test_stage_without_a_reference_says_how_to_make_one(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(lessons.LessonError, match="_build.py --execute 99"):
        lessons.stage(tmp_path / "staged")


def test_restore_rebuilds_the_learner_copy_without_outputs(tree: Path) -> None:
    executed(tree)
    (tree / "99_lesson.ipynb").write_text('{"edited by a learner": true}')
    lines = lessons.restore(["99"])
    assert nbformat.read(tree / "99_lesson.ipynb", as_version=4) == lessons.read_source(lessons.SRC / "99_lesson.py")
    assert "rebuilt" in lines[0]


def test_an_unknown_lesson_is_a_clear_error(tree: Path) -> None:
    with pytest.raises(lessons.LessonError, match="no lesson matches 42"):
        lessons.sources(["42"])


def test_every_lesson_shows_its_diagram_with_one_chunks_path() -> None:
    """Each lesson 00-09 shows an SVG of the part it takes apart, kept in the repository, up to date with
    notebooks/diagrams/_draw.py, with one chunk's path drawn on it."""
    import importlib.util
    import re
    import xml.etree.ElementTree as ET

    spec = importlib.util.spec_from_file_location("draw", lessons.NOTEBOOKS / "diagrams" / "_draw.py")
    draw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(draw)
    for source in sorted(lessons.SRC.glob("0[0-9]_*.py")):
        shown = re.findall(r"!\[[^\]]+\]\((diagrams/[\w.]+\.svg)\)", source.read_text())
        assert shown, f"{source.name} shows no diagram"
        path = lessons.NOTEBOOKS / shown[0]
        name = path.stem
        title, nodes, edges, chunk_path = draw.DIAGRAMS[name]
        assert path.read_text() == draw.svg(title, nodes, edges, chunk_path), f"run python {draw.__file__}"
        root = ET.fromstring(path.read_text())
        assert root.tag.endswith("svg") and chunk_path and f'stroke="{draw.CHUNK}"' in path.read_text()
