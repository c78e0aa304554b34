"""A request never fetches a tool: hls.js is served from the file set-up fetched, or a 503 naming `make lab`."""

from __future__ import annotations

import ast
from pathlib import Path

from fastapi.testclient import TestClient

from lab import toolpaths
from lab.api import app as api_app
from lab.config import ROOT


def test_missing_hlsjs_is_a_503_naming_make_lab(monkeypatch, tmp_path):
    monkeypatch.setattr(toolpaths, "hlsjs_file", lambda: tmp_path / "hls.min.js")
    resp = TestClient(api_app.app).get("/player/hls.min.js")  # no lifespan: no service is needed
    assert resp.status_code == 503 and "make lab" in resp.json()["detail"]


def test_nothing_in_lab_api_imports_lab_stack():
    for path in sorted((ROOT / "lab" / "api").glob("*.py")):
        tree = ast.parse(Path(path).read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n == "lab.stack" or n.startswith("lab.stack.")], path
