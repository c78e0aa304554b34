"""The room bundle: everything set-up fetches or builds, for one platform, in one archive with a hashed manifest.

One instructor machine runs `lab bundle --platform darwin/arm64,linux/amd64` (registries, Go); each learner runs
`make lab BUNDLE=lab-bundle-linux-amd64.tar`, which installs with no network at all:

    lab-bundle-<os>-<arch>/
      manifest.json       format, platform, Pythons, the pins it was made for, sha256 and size of every file
      wheels/             every Python dependency (with the dev extra, and setuptools for the editable
                          install) for the platform and each of Python 3.11-3.13; pyspark built once from its sdist
      tools/kafka-*/libs  Kafka's jars, tools/spark-sql-kafka-*/ the connector (Java: the same on every platform)
      tools/bin/          SeaweedFS, FerretDB, Prometheus, cross-compiled with CGO_ENABLED=0 for the platform
      tools/hls.js-*.tgz  the npm tarball, checked again against the pinned integrity when installed
      clips/              the sample clips

`unpack` needs only the standard library: the Makefile runs this file as a script before the venv exists
(`python3 lab/stack/bundle.py unpack ARCHIVE DIR`), and it refuses a file whose hash or size is not the manifest's,
a file the manifest does not list and a listed file that is missing. `install` (`lab setup --bundle DIR`) refuses
a bundle made for another platform, another Python or other pins, then puts the tools where set-up would.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
import tarfile
from pathlib import Path

FORMAT = 1
PYTHONS = ("3.11", "3.12", "3.13")
PLATFORMS = ("linux/amd64", "linux/arm64", "darwin/arm64", "darwin/amd64")
MANIFEST = "manifest.json"


class BundleError(RuntimeError):
    """The bundle cannot be used: the message says which file or setting and what to do."""


def host_platform() -> str:
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(),
                                                                                        platform.machine().lower())
    return f"{'darwin' if sys.platform == 'darwin' else sys.platform}/{arch}"


def archive_name(plat: str) -> str:
    return f"lab-bundle-{plat.replace('/', '-')}.tar"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --- unpack and verify: the standard library only -------------------------------------------------------


def unpack(archive: Path, dest: Path) -> Path:
    """Extract the archive into dest (replacing an older unpack) and verify it against its manifest."""
    if not archive.is_file():
        raise BundleError(f"no bundle at {archive}: copy it from the instructor's USB stick or share")
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+: no absolute paths, no links out of the folder
            tar.extractall(partial, filter="data")
        else:
            if bad := [m.name for m in tar.getmembers() if m.name.startswith(("/", "..")) or ".." in m.name.split("/")
                       or not (m.isfile() or m.isdir())]:
                raise BundleError(f"{archive}: unsafe entries {bad[:3]}: refusing the bundle")
            tar.extractall(partial)
    roots = [p for p in partial.iterdir()]
    if len(roots) != 1 or not (roots[0] / MANIFEST).is_file():
        raise BundleError(f"{archive}: not a lab bundle (one folder with {MANIFEST} expected)")
    verify(roots[0])
    shutil.rmtree(dest, ignore_errors=True)
    roots[0].rename(dest)
    shutil.rmtree(partial, ignore_errors=True)
    return dest


def read_manifest(root: Path) -> dict:
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{root / MANIFEST}: unreadable ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{root}: bundle format {manifest.get('format')}, this lab reads {FORMAT}: make it again")
    return manifest


def verify(root: Path) -> dict:
    """Every file listed with its sha256 and size, and nothing else: else BundleError naming the file."""
    manifest = read_manifest(root)
    listed = manifest["files"]
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST}
    if extra := sorted(present - listed.keys()):
        raise BundleError(f"{root}: files not in the manifest: {', '.join(extra[:5])}: refusing the bundle")
    if missing := sorted(listed.keys() - present):
        raise BundleError(f"{root}: files missing: {', '.join(missing[:5])}: copy the bundle again")
    for rel, entry in listed.items():
        path = root / rel
        if path.stat().st_size != entry["size"] or sha256(path) != entry["sha256"]:
            raise BundleError(f"{rel}: its sha256 is not the manifest's: the bundle is damaged or altered; "
                              f"copy it again from the instructor's machine")
    return manifest


# --- build (the instructor's machine: registries and Go) ------------------------------------------------


def requirements() -> list[str]:
    """The venv's Python requirements: the project's, its dev extra, and the build backend of its editable install."""
    import tomllib

    from lab.config import ROOT

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    build = project["build-system"]["requires"]
    return [*project["project"]["dependencies"], *project["project"]["optional-dependencies"]["dev"], *build,
            "wheel"]


def pip_platforms(plat: str) -> list[str]:
    """Wheel platform tags a laptop of that platform takes (pip expands macOS versions downwards itself)."""
    os_name, arch = plat.split("/")
    if os_name == "linux":
        machine = {"amd64": "x86_64", "arm64": "aarch64"}[arch]
        # glibc 2.17 .. 2.35: Ubuntu 22.04 (WSL2's default), Debian 12 and newer
        return [f"manylinux_2_{minor}_{machine}" for minor in range(35, 16, -1)] + [f"manylinux2014_{machine}"]
    return ["macosx_14_0_arm64"] if arch == "arm64" else ["macosx_13_0_x86_64"]


def pins() -> dict[str, str]:
    """What a bundle is made for: the service pins and the Python requirements; set-up compares them."""
    from lab.versions import pins as service_pins

    return {**service_pins(), "python-requirements": hashlib.sha256("\n".join(requirements()).encode()).hexdigest()}


def build(platforms: list[str], pythons: list[str], out: Path, report=print) -> list[Path]:
    from lab.config import settings
    from lab.producer.clips import SAMPLE_CLIPS, ensure_sample_clips
    from lab.stack import tools

    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown:
        raise BundleError(f"unknown platform(s) {unknown}; known: {', '.join(PLATFORMS)}")
    tools.ensure_all()  # this machine's Kafka jars, connector and hls.js; its own Go tools
    ensure_sample_clips(report=tools.step)
    work = settings.lab_tools_dir / "bundle-work"
    shared_wheels = work / "sdist-wheels"
    _build_sdist_wheels(shared_wheels)
    hls = work / f"hls.js-{tools.pin('hlsjs')}.tgz"
    if not hls.exists():
        hls.parent.mkdir(parents=True, exist_ok=True)
        hls.write_bytes(tools._npm_tarball("hls.js", tools.pin("hlsjs"), tools.pin("hlsjs_integrity")))
    made = []
    for plat in platforms:
        name = archive_name(plat).removesuffix(".tar")
        root = work / name
        shutil.rmtree(root, ignore_errors=True)
        (root / "wheels").mkdir(parents=True)
        for python in pythons:
            tools.step(f"{plat}: Python {python} wheels (pip download)")
            tools.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
                       "--python-version", python, "--implementation", "cp",
                       *[arg for tag in pip_platforms(plat) for arg in ("--platform", tag)],
                       "--find-links", str(shared_wheels), "-d", str(root / "wheels"), *requirements()],
                      f"downloading the wheels for {plat}, Python {python}")
        _copy_tools(root / "tools", plat, hls)
        (root / "clips").mkdir()
        for clip in SAMPLE_CLIPS:
            shutil.copy2(clip.path, root / "clips" / clip.name)
        _write_manifest(root, plat, pythons)
        archive = out / archive_name(plat)
        out.mkdir(parents=True, exist_ok=True)
        tools.step(f"{plat}: writing {archive}")
        with tarfile.open(archive.with_suffix(".tar.partial"), "w") as tar:  # wheels and jars are compressed
            tar.add(root, arcname=name)
        archive.with_suffix(".tar.partial").rename(archive)
        shutil.rmtree(root)
        report(f"{archive}  ({archive.stat().st_size / 2**20:.0f} MiB)")
        made.append(archive)
    return made


def _build_sdist_wheels(dest: Path) -> None:
    """Requirements PyPI serves only as an sdist (pyspark), built once into pure wheels every platform takes."""
    from lab.stack import tools

    if dest.is_dir() and any(dest.glob("pyspark-*.whl")):
        return
    dest.mkdir(parents=True, exist_ok=True)
    tools.step("building wheels of the sdist-only requirements (pyspark: once)")
    pyspark = next(r for r in requirements() if r.startswith("pyspark"))
    tools.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dest), pyspark],
              "building the pyspark wheel")


def _copy_tools(dest: Path, plat: str, hls: Path) -> None:
    from lab import toolpaths
    from lab.stack import tools

    shutil.copytree(toolpaths.kafka_libs_dir(), dest / toolpaths.kafka_libs_dir().relative_to(
        toolpaths.kafka_libs_dir().parents[1]))
    shutil.copytree(toolpaths.spark_kafka_dir(), dest / toolpaths.spark_kafka_dir().name)
    (dest / "bin").mkdir(parents=True)
    goos, goarch = plat.split("/")
    for name in tools.GO_TOOLS:
        built = tools.build_go_binary(name, goos, goarch)
        shutil.copy2(built, dest / "bin" / toolpaths.go_binary_path(name).name)
    shutil.copy2(hls, dest / hls.name)


def _write_manifest(root: Path, plat: str, pythons: list[str]) -> None:
    files = {p.relative_to(root).as_posix(): {"sha256": sha256(p), "size": p.stat().st_size}
             for p in sorted(root.rglob("*")) if p.is_file()}
    (root / MANIFEST).write_text(json.dumps({"format": FORMAT, "platform": plat, "pythons": list(pythons),
                                             "pins": pins(), "files": files}, indent=1))


# --- install (a learner's `lab setup --bundle DIR`) -----------------------------------------------------


def install(root: Path) -> None:
    """Check the bundle is for this machine and checkout, then put its tools where set-up would have."""
    from lab import toolpaths
    from lab.config import settings
    from lab.producer.clips import SAMPLE_CLIPS, _usable
    from lab.stack import tools

    if root.is_file():  # the archive itself: unpack it beside the tools
        root = unpack(root, settings.lab_tools_dir.parent / "bundle")
    manifest = verify(root)
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if manifest["platform"] != host_platform():
        raise BundleError(f"{root}: made for {manifest['platform']}, this machine is {host_platform()}: use "
                          f"{archive_name(host_platform())}")
    if here not in manifest["pythons"]:
        raise BundleError(f"{root}: has wheels for Python {', '.join(manifest['pythons'])}, not {here}")
    if drift := sorted(k for k, v in pins().items() if manifest["pins"].get(k) != v):
        raise BundleError(f"{root}: made for other versions of {', '.join(drift)} than this checkout pins: make "
                          f"the bundle again from this commit (`lab bundle`)")
    tools.step(f"installing the tools from the bundle {root} (no network)")
    for src, dest in [(root / "tools" / toolpaths.kafka_libs_dir().parent.name / "libs", toolpaths.kafka_libs_dir()),
                      (root / "tools" / toolpaths.spark_kafka_dir().name, toolpaths.spark_kafka_dir())]:
        if not dest.is_dir():
            _copy_in(src, dest, shutil.copytree)
    for name in tools.GO_TOOLS:
        dest = toolpaths.go_binary_path(name)
        if not dest.exists():
            _copy_in(root / "tools" / "bin" / dest.name, dest, shutil.copy2)
    tools.fetch_hlsjs(tarball=root / "tools" / f"hls.js-{tools.pin('hlsjs')}.tgz")
    for clip in SAMPLE_CLIPS:
        if not _usable(clip):
            _copy_in(root / "clips" / clip.name, clip.path, shutil.copy2)


def _copy_in(src: Path, dest: Path, copy) -> None:
    """Copy to a partial name, then rename: an interrupted set-up never leaves half a tool in place."""
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True) if partial.is_dir() else partial.unlink(missing_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    copy(src, partial)
    partial.rename(dest)


if __name__ == "__main__":  # python3 lab/stack/bundle.py unpack ARCHIVE DIR  (the Makefile, before the venv)
    if len(sys.argv) != 4 or sys.argv[1] != "unpack":
        sys.exit("usage: python3 lab/stack/bundle.py unpack ARCHIVE DIR")
    try:
        done = unpack(Path(sys.argv[2]), Path(sys.argv[3]))
    except BundleError as exc:
        sys.exit(f"bundle: {exc}")
    print(f"  · bundle verified and unpacked into {done}", file=sys.stderr)  # noqa: T201
