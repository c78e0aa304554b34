"""Build the lesson notebooks from their reviewable sources, and run them for their reference outputs.

Each lesson is written as a percent-format Python file in `notebooks/src/`, read with jupytext: `# %% [markdown]`
starts a markdown cell (its lines keep a leading `# `), `# %%` a code cell, and `# %% tags=["nbval-ignore-output"]`
a code cell with cell tags. This script turns each into `NN_name.ipynb`, with the same kernel, metadata and cell
ids every time, so a diff of a lesson is a diff of its source (`lab/lessons.py` does the work).

    python notebooks/_build.py                      # write every notebooks/*.ipynb (what learners open: no outputs)
    python notebooks/_build.py --execute            # also run each against the stack into instructor/outputs/
    python notebooks/_build.py --execute 04 05      # only these lessons
    python notebooks/_build.py --stage DIR          # the lessons with their reference outputs, for nbval
    python notebooks/_build.py --restore 04         # a learner's lesson rebuilt as shipped (`lab lessons restore`)
    python notebooks/_build.py --execute --out DIR  # run into DIR, leaving instructor/outputs/ alone

Run with the stack's env (`LAB_ENV_FILE=...`) exported: kernels inherit it, and run in notebooks/ as a learner's
do. Outputs that vary from run to run are sanitized by `notebooks/sanitize.cfg` when nbval compares them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script from a checkout: `lab` is importable without install

from lab import lessons  # noqa: E402

CELL_TIMEOUT_S = 600


def say(line: str, stream=sys.stdout) -> None:
    stream.write(line + "\n")
    stream.flush()


def execute(path: Path) -> float:
    """Run a notebook top to bottom in a fresh kernel (cwd: notebooks/, as in JupyterLab) and store its outputs."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    started = time.monotonic()
    try:
        NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name=lessons.KERNEL["name"],
                       resources={"metadata": {"path": str(lessons.NOTEBOOKS)}}).execute()
    finally:  # a failed run is written too: its error output shows where it stopped
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
        nbformat.write(nb, path)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true", help="run each notebook and store its outputs")
    parser.add_argument("--out", type=Path, default=lessons.OUTPUTS,
                        help="where --execute writes the run lessons (default instructor/outputs/)")
    parser.add_argument("--stage", type=Path, metavar="DIR", help="write the lessons as committed into DIR")
    parser.add_argument("--restore", action="store_true", help="rebuild notebooks/ copies as shipped")
    parser.add_argument("only", nargs="*", help="lesson numbers or names (default: all)")
    args = parser.parse_args(argv)
    try:
        if args.stage:
            for path in lessons.stage(args.stage, args.only):
                say(f"staged {path}")
            return 0
        if args.restore:
            say("\n".join(lessons.restore(args.only)))
            return 0
        for source in lessons.sources(args.only):
            line = f"built {lessons.build(source)}"
            if args.execute:
                target = lessons.build(source, args.out)
                line += f"; {target} executed in {execute(target):.0f} s"
            say(line)
    except lessons.LessonError as exc:
        say(f"_build.py: {exc}", sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
