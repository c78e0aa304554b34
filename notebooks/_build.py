"""Build the lesson notebooks from their reviewable sources, and optionally run them to store outputs.

Each lesson is written as a percent-format Python file in `notebooks/src/` (the format jupytext and VS Code
read): `# %% [markdown]` starts a markdown cell (its lines keep a leading `# `), `# %%` a code cell, and
`# %% tags=["nbval-ignore-output"]` a code cell with cell tags. This script turns each into `NN_name.ipynb`
beside it, with the same kernel and metadata every time, so a diff of a lesson is a diff of its source.

    python notebooks/_build.py                 # write every .ipynb (no outputs)
    python notebooks/_build.py --execute       # write, then run each against the stack and store outputs
    python notebooks/_build.py --execute 04 05 # only these lessons

Run with the stack's env (`LAB_ENV_FILE=...`) exported: kernels inherit it. Outputs that vary from run to
run are sanitized by `notebooks/sanitize.cfg` when nbval compares them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
CELL = re.compile(r"^# %%(?P<kind> \[markdown\])?(?:\s+tags=(?P<tags>\[.*\]))?\s*$")
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
CELL_TIMEOUT_S = 600


def parse(text: str) -> list[nbformat.NotebookNode]:
    """Cells of one percent-format source, in order (text before the first marker is ignored)."""
    cells: list[nbformat.NotebookNode] = []
    kind, tags, lines = None, [], []

    def flush() -> None:
        if kind is None:
            return
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if kind == "markdown":
            body = "\n".join(re.sub(r"^# ?", "", line) for line in lines)
            cells.append(new_markdown_cell(body))
        else:
            cell = new_code_cell("\n".join(lines))
            if tags:
                cell.metadata["tags"] = tags
            cells.append(cell)

    for line in text.splitlines():
        match = CELL.match(line)
        if match:
            flush()
            kind = "markdown" if match.group("kind") else "code"
            tags = json.loads(match.group("tags")) if match.group("tags") else []
            lines = []
        else:
            lines.append(line)
    flush()
    for number, cell in enumerate(cells):  # stable ids: a rebuild changes nothing a reviewer has to read
        cell["id"] = f"c{number:02d}"
    return cells


def build(source: Path) -> Path:
    nb = new_notebook(cells=parse(source.read_text()))
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    target = HERE / f"{source.stem}.ipynb"
    nbformat.write(nb, target)
    return target


def execute(path: Path) -> float:
    """Run a notebook top to bottom in a fresh kernel (cwd: notebooks/) and store its outputs."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    started = time.monotonic()
    try:
        NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name=KERNEL["name"],
                       resources={"metadata": {"path": str(HERE)}}).execute()
    finally:  # a failed run is written too: its error output shows where it stopped
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
        nbformat.write(nb, path)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true", help="run each notebook and store its outputs")
    parser.add_argument("only", nargs="*", help="lesson numbers or names to build (default: all)")
    args = parser.parse_args(argv)
    sources = sorted(SRC.glob("[0-9][0-9]_*.py"))
    if args.only:
        sources = [s for s in sources if any(s.stem.startswith(o) for o in args.only)]
    if not sources:
        print("no lesson sources matched", file=sys.stderr)
        return 1
    for source in sources:
        target = build(source)
        line = f"built {target.name}"
        if args.execute:
            line += f", executed in {execute(target):.0f} s"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
