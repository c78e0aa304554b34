"""The lesson notebooks: built from their sources, staged for the tests, restored for a learner.

Each lesson is a percent-format Python file in `notebooks/src/` (read with jupytext, as VS Code and JupyterLab's
jupytext extension read it); `notebooks/NN_name.ipynb` is built from it, and stores the outputs of a run.

A learner runs and edits `notebooks/*.ipynb`, and JupyterLab saves them. So the tests never use those files:
`stage()` builds every lesson from its source into a scratch directory, with the outputs of the notebook as
committed to git (`git show HEAD:…`; the working copy only when there is no git), and refuses a stored
notebook whose cells no longer match the source. `restore()` puts a learner's copy back as committed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat

from lab.config import ROOT

NOTEBOOKS = ROOT / "notebooks"
SRC = NOTEBOOKS / "src"
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


class LessonError(RuntimeError):
    """Something a maintainer or learner can fix; the message says how."""


def sources(only: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """The lesson sources, in order; `only` keeps those whose name starts with one of its items ("04", "05_live")."""
    found = sorted(SRC.glob("[0-9][0-9]_*.py"))
    if only:
        found = [s for s in found if any(s.stem.startswith(o) for o in only)]
        if not found:
            raise LessonError(f"no lesson matches {' '.join(only)}; lessons: "
                              + ", ".join(s.stem for s in sorted(SRC.glob("[0-9][0-9]_*.py"))))
    return found


def read_source(source: Path) -> nbformat.NotebookNode:
    """A lesson source as a notebook without outputs, with stable cell ids and kernel metadata, so a rebuild
    changes nothing a reviewer has to read."""
    import jupytext

    nb = jupytext.reads(source.read_text(), fmt="py:percent")
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    for number, cell in enumerate(nb.cells):
        cell["id"] = f"c{number:02d}"
        cell.metadata.pop("lines_to_next_cell", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def notebook_name(source: Path) -> str:
    return f"{source.stem}.ipynb"


def build(source: Path, out_dir: Path | None = None) -> Path:
    """Write the lesson's notebook (no outputs) into `out_dir` (default: notebooks/)."""
    out_dir = out_dir or NOTEBOOKS
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / notebook_name(source)
    nbformat.write(read_source(source), target)
    return target


def committed_text(name: str) -> str | None:
    """`notebooks/{name}` as committed in git's HEAD; None outside a git checkout or if it was never committed."""
    try:
        shown = subprocess.run(["git", "show", f"HEAD:notebooks/{name}"], cwd=ROOT, capture_output=True,
                               text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return shown.stdout if shown.returncode == 0 else None


def committed(name: str) -> nbformat.NotebookNode | None:
    text = committed_text(name)
    return None if text is None else nbformat.reads(text, as_version=4)


def stored(name: str) -> nbformat.NotebookNode:
    """The notebook with the outputs the lesson should reproduce: as committed, else the working copy."""
    nb = committed(name)
    if nb is None:
        path = NOTEBOOKS / name
        if not path.exists():
            raise LessonError(f"notebooks/{name} does not exist: run `python notebooks/_build.py --execute`")
        nb = nbformat.read(path, as_version=4)
    return nb


def stage(out_dir: Path, only: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """Each lesson built from its source into `out_dir`, carrying the stored outputs of the same cells."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.ipynb"):
        old.unlink()
    written = []
    for source in sources(only):
        nb, name = read_source(source), notebook_name(source)
        reference = stored(name)
        if [c.source for c in reference.cells] != [c.source for c in nb.cells]:
            raise LessonError(f"notebooks/{name} is stale: its cells differ from notebooks/src/{source.name}; "
                              f"run `python notebooks/_build.py --execute {source.stem[:2]}` on a running stack "
                              "and commit the notebook")
        for cell, ref in zip(nb.cells, reference.cells, strict=True):
            if cell.cell_type == "code":
                # nbval refuses a reference cell with outputs but no execution_count ("Unrun reference cell")
                cell.outputs, cell.execution_count = ref.get("outputs", []), ref.get("execution_count")
        target = out_dir / name
        nbformat.write(nb, target)
        written.append(target)
    return written


def restore(only: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Put lessons back as committed (outputs included), whatever a learner ran or edited in them; a lesson
    never committed is built from its source. Returns a line per lesson."""
    lines = []
    for source in sources(only):
        name = notebook_name(source)
        text = committed_text(name)
        if text is None:
            build(source)
            lines.append(f"notebooks/{name}: rebuilt from notebooks/src/{source.name} (no outputs)")
        else:
            (NOTEBOOKS / name).write_text(text)
            lines.append(f"notebooks/{name}: restored as committed")
    if lines:
        lines.append("in JupyterLab: close the notebook's tab without saving, or File > Reload Notebook from Disk")
    return lines
