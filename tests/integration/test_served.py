"""What JupyterLab serves a learner holds no answer: a real JupyterLab, started as the stack starts it (its
root, its settings), listed through its contents API. No solution module, no instructor guide, no lesson with
stored outputs, and no line of a solution or of a questionnaire answer in any file it serves."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lab.config import ROOT
from lab.stack import services
from lab.waiting import wait_for

INSTRUCTOR = ROOT / "instructor"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    port, token = free_port(), secrets.token_hex(16)
    command = [f"--port={port}" if arg.startswith("--port=") else arg for arg in services._jupyter_command()]
    runtime = tmp_path_factory.mktemp("jupyter-runtime")
    env = {**os.environ, "JUPYTER_TOKEN": token, "JUPYTER_RUNTIME_DIR": str(runtime)}
    log = (runtime / "jupyter.log").open("w")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"token {token}"},
                          timeout=30)
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyterlab exited: {(runtime / 'jupyter.log').read_text()[-2000:]}")
            try:
                return client.get("/api/status").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, "JupyterLab to answer", timeout=120, every=0.5)
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(30)
        log.close()


def served(client: httpx.Client, path: str = "") -> Iterator[dict]:
    """Every file the contents API lists, with its content, walking directories."""
    listing = client.get(f"/api/contents/{path}", params={"content": 1})
    listing.raise_for_status()
    for entry in listing.json()["content"]:
        if entry["type"] == "directory":
            yield from served(client, entry["path"])
        else:
            got = client.get(f"/api/contents/{entry['path']}", params={"content": 1})
            got.raise_for_status()
            yield got.json()


def text_of(entry: dict) -> str:
    content = entry["content"]
    return json.dumps(content) if entry["type"] == "notebook" else str(content or "")


def solution_lines() -> set[str]:
    """The code lines of every solution (not imports, docstrings, comments or signatures)."""
    lines = set()
    for path in (INSTRUCTOR / "solutions").glob("*.py"):
        for line in path.read_text().splitlines():
            line = line.strip()
            if len(line) >= 24 and not line.startswith(("from ", "import ", "def ", '"""', "#", "return next(")):
                lines.add(line)
    return lines


def questionnaire_answers() -> list[str]:
    """The answer lines of the instructor guide's questionnaire section (the indented line after each question)."""
    guide = (INSTRUCTOR / "INSTRUCTOR.md").read_text()
    section = guide[guide.index("## Questionnaire answers"):]
    return [m.group(1)[:60] for m in re.finditer(r"^ {3}(\S.{40,})$", section, flags=re.M)]


def test_jupyterlab_serves_no_solution_and_no_answer(jupyter: httpx.Client) -> None:
    files = list(served(jupyter))
    paths = [f["path"] for f in files]
    assert any(p.endswith("00_welcome.ipynb") for p in paths), paths  # the walk did see the lessons
    assert not [p for p in paths if re.search(r"(^|/)(solutions?|outputs|instructor)(/|$)|INSTRUCTOR", p, re.I)]
    notebooks = [f for f in files if f["type"] == "notebook"]
    assert len(notebooks) >= 10
    for nb in notebooks:
        ran = [c["id"] for c in nb["content"]["cells"] if c.get("outputs") or c.get("execution_count")]
        assert not ran, (f"{nb['path']} is served with stored outputs in cells {ran}: they answer its "
                         "predictions (a lesson you ran: `lab lessons restore all`)")
    answers, lines = questionnaire_answers(), solution_lines()
    assert len(answers) > 50 and len(lines) > 10  # the guide and the solutions are where this test reads them
    for f in files:
        text = text_of(f)
        assert not [a for a in answers if a in text], f"{f['path']} holds a questionnaire answer"
        assert not [line for line in lines if line in text], f"{f['path']} holds a line of a solution"


def test_the_shipped_lessons_are_their_sources_without_outputs() -> None:
    import nbformat

    from lab import lessons

    for source in lessons.sources():
        shipped = Path(lessons.NOTEBOOKS / lessons.notebook_name(source))
        assert shipped.exists(), f"{shipped} missing: run `python notebooks/_build.py`"
        assert nbformat.read(shipped, as_version=4) == lessons.read_source(source), (
            f"{shipped.name} differs from notebooks/src/{source.name}: run `python notebooks/_build.py`")
