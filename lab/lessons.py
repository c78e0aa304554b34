"""The lesson notebooks: built from their sources, run for their reference outputs, staged for the tests.

Each lesson is a percent-format Python file in `notebooks/src/` (read with jupytext, as VS Code and JupyterLab's
jupytext extension read it). Two notebooks are made from it:

- `notebooks/NN_name.ipynb`, the one a learner opens: no outputs, so no prediction is answered before it is
  made. `notebooks/` is JupyterLab's root, and holds nothing else a learner should not read.
- `instructor/outputs/NN_name.ipynb`, the same cells run on a stack, with their outputs: what nbval compares
  a new run with, and what an instructor reads. It is outside JupyterLab's root.

`stage()` builds every lesson from its source into a scratch directory with the reference outputs, and
refuses a reference whose cells no longer match the source. `restore()` rebuilds a learner's copy.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from lab.config import ROOT

NOTEBOOKS = ROOT / "notebooks"
SRC = NOTEBOOKS / "src"
OUTPUTS = ROOT / "instructor" / "outputs"
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
EXECUTE_COMMAND = "python notebooks/_build.py --execute"


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


def reference(name: str) -> nbformat.NotebookNode:
    """The lesson as run on a stack, with the outputs a new run should reproduce."""
    path = OUTPUTS / name
    if not path.exists():
        raise LessonError(f"instructor/outputs/{name} does not exist: run `{EXECUTE_COMMAND} {name[:2]}` on a "
                          "running stack")
    return nbformat.read(path, as_version=4)


def stage(out_dir: Path, only: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """Each lesson built from its source into `out_dir`, carrying the reference outputs of the same cells."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.ipynb"):
        old.unlink()
    written = []
    for source in sources(only):
        nb, name = read_source(source), notebook_name(source)
        ref = reference(name)
        if [c.source for c in ref.cells] != [c.source for c in nb.cells]:
            raise LessonError(f"instructor/outputs/{name} is stale: its cells differ from notebooks/src/"
                              f"{source.name}; run `{EXECUTE_COMMAND} {source.stem[:2]}` on a running stack "
                              "and commit instructor/outputs/ and notebooks/")
        for cell, stored in zip(nb.cells, ref.cells, strict=True):
            if cell.cell_type == "code":
                # nbval refuses a reference cell with outputs but no execution_count ("Unrun reference cell")
                cell.outputs, cell.execution_count = stored.get("outputs", []), stored.get("execution_count")
        target = out_dir / name
        nbformat.write(nb, target)
        written.append(target)
    return written


def restore(only: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Put lessons back as shipped, built from their sources (no outputs), whatever a learner ran or edited in
    them. Returns a line per lesson."""
    lines = [f"notebooks/{build(source).name}: rebuilt from notebooks/src/{source.name}" for source in sources(only)]
    if lines:
        lines.append("in JupyterLab: close the notebook's tab without saving, or File > Reload Notebook from Disk")
    return lines
