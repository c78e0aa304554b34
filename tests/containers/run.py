"""The container stack, run for real: `make test-containers` (the last stage of `make test`).

It builds the project's images from the committed Dockerfiles (`docker compose build`), starts the stack, waits
for every health check, then, through the published ports as a learner's browser and terminal would:
uploads a VOD and plays it back (playlists from the API, segments from S3, decoded by ffmpeg), checks that the
live window slides, starts a SparkSession as a uid with no /etc/passwd entry, runs every lesson 00-09 inside the
`jupyter` container (tests/containers/run_lesson.py; the host commands lesson 08 prints are run here, as the
learner would), and prints each container's memory (now and peak) against its mem_limit. A container that
restarted on its own or was OOM-killed fails the test. Everything is torn down, volumes included, even on failure.

- No engine: on CI (CI=true, root) Debian's docker.io is installed and dockerd started; elsewhere one line says
  the container test did not run, and why, and the exit status is 0 (the rest of `make test` still counts).
- Base images and third-party images that cannot be pulled are made locally (tests/containers/bases.sh) and the
  stand-ins' override (tests/containers/standins.yml) is added; README.md, "The container test", says what the
  stand-ins leave untested.
- Its own compose project and host ports (tests/containers/test.env): it runs beside any other stack.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import m3u8

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tests" / "containers"
WORK = ROOT / ".lab" / "containers-test"
PROJECT = os.environ.get("LAB_CONTAINERS_PROJECT", "streaming-lab-test")
LESSONS = ("00", "01", "02", "03", "04", "05", "06", "07", "08", "09")
HEALTHY_WITHIN_S = 900.0   # deadlines, never what is asserted: a loaded 2-core machine is slow, not broken
READY_WITHIN_S = 600.0
NO_PASSWD_UID = 4242       # a uid the image's /etc/passwd does not have (the JVM's user.home is `?` for it)
HOST_COMMAND = re.compile(r"^\s+docker compose (kill|stop|start) ([a-z-]+)\s*$")


def say(line: str) -> None:
    print(f"[containers] {line}", flush=True)  # noqa: T201


class Skip(Exception):
    """No engine here, and this is not a machine the test may install one on."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def run(*cmd: str, check: bool = True, capture: bool = False, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, text=True, capture_output=capture, **kw)


# --- the engine --------------------------------------------------------------------------------------


def apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say(f"installing Debian's {' '.join(packages)} (CI)")
    run("apt-get", "update", "-qq", env=env, capture=True)
    run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages, env=env, capture=True)


def may_install() -> bool:
    return in_ci() and os.geteuid() == 0 and shutil.which("apt-get") is not None


def engine_answers() -> bool:
    return run("docker", "info", check=False, capture=True).returncode == 0


def ensure_engine() -> subprocess.Popen | None:
    """A running engine and a compose plugin; on CI the engine is installed and started (returned: stop it)."""
    if not shutil.which("docker"):
        if not may_install():
            raise Skip("no docker CLI on PATH (install Docker Engine 20.10+ with the compose plugin)")
        apt_install("docker.io")
    started = None
    if not engine_answers():
        if not may_install():
            raise Skip("no Docker engine answers (`docker info` fails): start Docker, then `make test-containers`")
        if not shutil.which("dockerd"):
            apt_install("docker.io")
        WORK.mkdir(parents=True, exist_ok=True)
        say("starting dockerd (CI)")
        started = subprocess.Popen(["dockerd"], stdout=open(WORK / "dockerd.log", "w"), stderr=subprocess.STDOUT,
                                   start_new_session=True)
        deadline = time.monotonic() + 60
        while not engine_answers():
            if started.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start; see {WORK / 'dockerd.log'}")
            time.sleep(1)
    if run("docker", "compose", "version", check=False, capture=True).returncode != 0:
        raise Skip("the docker compose plugin is missing (`lab setup --for-tests` builds it; `make test` does that)")
    return started


# --- compose ----------------------------------------------------------------------------------------


class Stack:
    def __init__(self, standins: bool):
        files = ["docker-compose.yml", "tests/containers/compose.yml"]
        if standins:
            files.append("tests/containers/standins.yml")
        self.base = ["docker", "compose", "-p", PROJECT, "--env-file", ".env", "--env-file",
                     "tests/containers/test.env", *[a for f in files for a in ("-f", f)]]
        self.env = {**os.environ, "LAB_UID": str(os.getuid()), "LAB_GID": str(os.getgid())}
        self.ports = dict(line.split("=", 1) for line in (HERE / "test.env").read_text().splitlines()
                          if line and not line.startswith("#"))

    def __call__(self, *args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run([*self.base, *args], cwd=ROOT, env=self.env, check=check, text=True,
                              capture_output=capture)

    def url(self, port_name: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[port_name]}{path}"

    def containers(self) -> list[dict]:
        out = self("ps", "-a", "--format", "json", capture=True).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return [r for row in rows for r in (row if isinstance(row, list) else [row])]

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        while True:
            rows = self.containers()
            bad = [r for r in rows if r["State"] == "exited" and (r["Service"] != "lab-init" or r["ExitCode"] != 0)]
            if bad:
                self.logs(*[r["Service"] for r in bad])
                raise AssertionError(f"exited: {', '.join(r['Service'] + ' ' + str(r['ExitCode']) for r in bad)}")
            waiting = [r["Service"] for r in rows if r["Service"] != "lab-init" and r.get("Health") != "healthy"]
            if rows and not waiting:
                return
            if time.monotonic() > deadline:
                self.logs(*waiting)
                raise AssertionError(f"not healthy within {HEALTHY_WITHIN_S:.0f} s: {', '.join(waiting)}")
            time.sleep(3)

    def logs(self, *services: str) -> None:
        self("logs", "--no-color", "--tail", "60", *services, check=False)

    def inspect(self) -> list[dict]:
        ids = self("ps", "-a", "-q", capture=True).stdout.split()
        return json.loads(run("docker", "inspect", *ids, capture=True).stdout) if ids else []


def peak_bytes(container_id: str) -> int | None:
    """The cgroup's high-water mark (v1: memory.max_usage_in_bytes, v2: memory.peak), if the host shows it."""
    for path in (f"/sys/fs/cgroup/memory/docker/{container_id}/memory.max_usage_in_bytes",
                 f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.peak"):
        try:
            return int(Path(path).read_text())
        except (OSError, ValueError):
            continue
    return None


def memory_report(stack: Stack, when: str) -> None:
    """`docker stats` (now) and the cgroup's peak, against each container's mem_limit."""
    now = {}
    out = run("docker", "stats", "--no-stream", "--format", "{{.ID}} {{.MemUsage}}",
              *[c["Id"] for c in stack.inspect()], capture=True).stdout
    for line in out.splitlines():
        cid, usage = line.split(" ", 1)
        now[cid] = usage.split(" / ")[0]
    say(f"memory {when} (docker stats now; peak from the cgroup; limit from docker-compose.yml):")
    for c in sorted(stack.inspect(), key=lambda c: c["Name"]):
        limit = c["HostConfig"]["Memory"]
        peak = peak_bytes(c["Id"])
        share = f"{100 * peak / limit:5.1f} %" if peak and limit else "   -"
        peak_text = f"{peak / 2**20:6.0f} MiB" if peak else "      -"
        service = c["Config"]["Labels"].get("com.docker.compose.service", c["Name"])
        say(f"  {service:14} now {now.get(c['Id'][:12], '-'):>10}  peak {peak_text}  "
            f"limit {limit / 2**20:5.0f} MiB  peak/limit {share}")


def no_restarts_or_oom(stack: Stack, allowed: set[str] = frozenset()) -> None:
    """A service that crash-looped (restart: unless-stopped hides it) or was OOM-killed fails the test."""
    bad = []
    for c in stack.inspect():
        service = c["Config"]["Labels"].get("com.docker.compose.service", c["Name"])
        if c["State"].get("OOMKilled"):
            bad.append(f"{service} was OOM-killed")
        if c.get("RestartCount", 0) and service not in allowed:
            bad.append(f"{service} restarted {c['RestartCount']} time(s)")
    if bad:
        raise AssertionError("; ".join(bad))


# --- the checks through the published ports ----------------------------------------------------------


def api_key() -> str:
    text = (HERE / "compose.yml").read_text()
    return re.search(r"LAB_API_KEY: (\S+)", text).group(1)


def decodes(url: str, ffmpeg: str) -> None:
    """A segment fetched as a player fetches it, decoded to the end by ffmpeg."""
    data = httpx.get(url, timeout=30).raise_for_status().content
    with tempfile.NamedTemporaryFile(suffix=".ts") as f:
        f.write(data)
        f.flush()
        proc = run(ffmpeg, "-v", "error", "-i", f.name, "-f", "null", "-", check=False, capture=True)
    assert proc.returncode == 0 and not proc.stderr.strip(), f"{url} does not decode: {proc.stderr[-500:]}"


def playlist(url: str) -> m3u8.M3U8:
    resp = httpx.get(url, timeout=30).raise_for_status()
    return m3u8.loads(resp.text, uri=url)


def vod_plays(stack: Stack, ffmpeg: str) -> None:
    clips = sorted(p for p in (ROOT / "data").glob("*.mp4"))
    assert clips, "no sample clip in data/ (the jupyter service makes them at start)"
    clip = min(clips, key=lambda p: p.stat().st_size)
    with httpx.Client(base_url=stack.url("API_PORT"), timeout=60) as api:
        with open(clip, "rb") as f:
            resp = api.post("/vod/upload", headers={"X-API-Key": api_key()},
                            files={"file": (clip.name, f, "video/mp4")}, data={"title": "container test"})
        assert resp.status_code == 202, resp.text
        stream_id = resp.json()["stream_id"]
        deadline = time.monotonic() + READY_WITHIN_S
        while (status := api.get(f"/vod/{stream_id}/metadata").json().get("status")) not in ("ready", "failed"):
            assert time.monotonic() < deadline, f"{stream_id} not ready within {READY_WITHIN_S:.0f} s: {status}"
            time.sleep(2)
        assert status == "ready", api.get(f"/vod/{stream_id}/metadata").text
        master = playlist(api.get(f"/vod/{stream_id}/manifest").raise_for_status().json()["manifest_url"])
    assert master.playlists, "the master playlist names no variant"
    for variant in master.playlists:
        media = playlist(variant.absolute_uri)
        assert media.segments and media.is_endlist, f"{variant.uri}: no segments or no ENDLIST"
        decodes(media.segments[0].absolute_uri, ffmpeg)
        decodes(media.segments[-1].absolute_uri, ffmpeg)
    say(f"VOD {stream_id} ({clip.name}): ready; {len(master.playlists)} variants play from "
        f"{stack.url('API_PORT')} and {stack.url('S3_PORT')}")


def live_slides(stack: Stack, ffmpeg: str) -> None:
    """The producer's live stream: its window's media sequence moves on while it stays DVR_WINDOW_SIZE long."""
    from pymongo import MongoClient

    catalog = MongoClient(stack.url("MONGO_PORT").replace("http", "mongodb"), serverSelectionTimeoutMS=10_000)
    db = catalog[dotenv("MONGO_DB")]
    window = int(dotenv("DVR_WINDOW_SIZE"))
    deadline = time.monotonic() + READY_WITHIN_S
    with httpx.Client(base_url=stack.url("API_PORT"), timeout=30) as api:
        while True:
            assert time.monotonic() < deadline, f"the live window did not slide within {READY_WITHIN_S:.0f} s"
            newest = [e["_id"] for e in db["streams"].find({"collection": "live_metadata"}).sort("since", -1).limit(3)]
            live = [r.json() for r in (api.get(f"/live/{s}/live") for s in newest) if r.status_code == 200]
            live = [d for d in live if d["status"] == "live"]
            if live:
                first = playlist(live[0]["manifest_url"])
                if first.media_sequence and len(first.segments) == window:
                    break
            time.sleep(2)
        stream_id = live[0]["stream_id"]
        while (later := playlist(api.get(f"/live/{stream_id}/live").json()["manifest_url"])).media_sequence \
                <= first.media_sequence:
            assert time.monotonic() < deadline, f"{stream_id}'s window stayed at {first.media_sequence}"
            time.sleep(1)
    assert len(later.segments) <= window
    decodes(later.segments[-1].absolute_uri, ffmpeg)
    say(f"live {stream_id}: the window slid from sequence {first.media_sequence} to {later.media_sequence} "
        f"({len(later.segments)} of {window} segments), newest segment decodes")


def dotenv(name: str) -> str:
    for path in (HERE / "test.env", ROOT / ".env"):
        for line in path.read_text().splitlines():
            if line.startswith(f"{name}="):
                return line.split("=", 1)[1].split("#")[0].strip()
    raise KeyError(name)


def spark_for_any_uid(stack: Stack) -> None:
    """A SparkSession started in the jupyter container as a uid the image's /etc/passwd does not know."""
    code = ("from lab.streaming import session; s = session.build('uid-check', master='local[1]'); "
            "assert s.range(3).count() == 3; print('spark ok as uid', __import__('os').getuid()); s.stop()")
    stack("exec", "-T", "-u", f"{NO_PASSWD_UID}:{NO_PASSWD_UID}", "jupyter", "python", "-c", code)


def lessons(stack: Stack) -> list[tuple[str, float]]:
    """Every lesson in the jupyter container, as built from notebooks/src/; the host commands they print for
    the learner's terminal (lesson 08) are run here."""
    staged = WORK / "lessons"
    shutil.rmtree(staged, ignore_errors=True)
    run(sys.executable, "notebooks/_build.py", "--stage", str(staged), *LESSONS, cwd=ROOT, capture=True)
    times = []
    for path in sorted(staged.glob("[0-9][0-9]_*.ipynb")):
        if path.name.endswith(".ran.ipynb"):
            continue
        say(f"lesson {path.name} in the jupyter container")
        began = time.monotonic()
        proc = subprocess.Popen([*stack.base, "exec", "-T", "jupyter", "python", "/app/run_lesson.py",
                                 f"/app/test-lessons/{path.name}"], cwd=ROOT, env=stack.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        tail: list[str] = []
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-40:]
            if match := HOST_COMMAND.match(line):
                say(f"  (the learner's terminal) docker compose {match[1]} {match[2]}")
                stack(match[1], match[2])
        if proc.wait() != 0:
            print("\n".join(tail), flush=True)  # noqa: T201
            raise AssertionError(f"lesson {path.name} failed in the jupyter container (see {staged})")
        times.append((path.name, time.monotonic() - began))
        say(f"  passed in {times[-1][1]:.0f} s")
    assert len(times) == len(LESSONS), f"{len(times)} lessons ran, {len(LESSONS)} expected"
    return times


# --- the run ------------------------------------------------------------------------------------------


def main() -> int:
    try:
        dockerd = ensure_engine()
    except Skip as why:
        say(f"the container test did not run: {why}")
        return 0
    began = time.monotonic()
    stages: list[tuple[str, float]] = []

    def stage(name: str, since: float) -> float:
        stages.append((name, time.monotonic() - since))
        return time.monotonic()

    stack = None

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        if may_install() and not shutil.which("debootstrap"):
            apt_install("debootstrap")  # used only if a base image cannot be pulled
        t = time.monotonic()
        run(str(HERE / "bases.sh"), cwd=ROOT)
        kind = run(str(HERE / "bases.sh"), "services", cwd=ROOT, capture=True).stdout.strip()
        say(f"third-party services: {'stand-ins (tests/containers/standins.yml)' if kind == 'standins' else 'real'}")
        t = stage("base images", t)
        stack = Stack(standins=kind == "standins")
        stack("down", "-v", "--remove-orphans", check=False, capture=True)  # what an interrupted run left
        # One service per image: every lab service shares streaming-lab/lab (the classic builder, unlike bake,
        # would build it once per service that names it)
        stack("build", "lab-init", "s3")
        t = stage("docker compose build", t)
        stack("up", "-d", "--no-build")
        stack.wait_healthy()
        t = stage("up to healthy", t)
        from imageio_ffmpeg import get_ffmpeg_exe

        ffmpeg = get_ffmpeg_exe()
        vod_plays(stack, ffmpeg)
        live_slides(stack, ffmpeg)
        spark_for_any_uid(stack)
        no_restarts_or_oom(stack)
        memory_report(stack, "after the VOD and live checks")
        t = stage("VOD, live and uid checks", t)
        for name, seconds in lessons(stack):
            stages.append((f"  {name}", seconds))
        t = stage("lessons 00-09", t)
        memory_report(stack, "after the lessons")
        no_restarts_or_oom(stack, allowed={"spark-job"})  # lesson 08 kills it on purpose
        say("passed")
        return 0
    except (AssertionError, subprocess.CalledProcessError) as exc:
        say(f"FAILED: {exc}")
        return 1
    finally:
        if stack is not None:
            stack("down", "-v", "--remove-orphans", check=False, capture=True)
        if dockerd is not None:
            dockerd.terminate()
            dockerd.wait(timeout=60)
        for name, seconds in stages:
            say(f"time: {name:28} {seconds:6.0f} s")
        say(f"time: {'total':28} {time.monotonic() - began:6.0f} s")


if __name__ == "__main__":
    sys.exit(main())
