"""The lab's code in the jupyter container's environment, without an engine (issue 14's findings).

Each test runs Python in a subprocess whose environment is the one `docker compose config` gives the jupyter
service (with secrets of the test's own: containers mode refuses the committed ones), so settings, health
probes, URLs and lesson 08's service control are exactly what a kernel in the container gets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.unit.test_compose import ROOT, SERVICES, compose_config, compose_source

SECRETS = {"LAB_API_KEY": "test-key-not-committed", "URL_SIGNING_SECRET": "test-signing-not-committed",
           "S3_SECRET_KEY": "test-s3-not-committed", "JUPYTER_TOKEN": "test-token-not-committed",
           "GRAFANA_PASSWORD": "test-grafana-not-committed"}


def in_jupyter(code: str, **extra: str) -> dict:
    """Run `code` (which prints one JSON document) with the jupyter service's environment."""
    env = {k: str(v) for k, v in compose_config()["services"]["jupyter"]["environment"].items()}
    env.update(SECRETS, PATH=os.environ["PATH"], HOME=os.environ.get("HOME", "/tmp"), PYTHONPATH=str(ROOT),
               LAB_STATE_DIR=os.environ.get("TMPDIR", "/tmp") + "/lab-containers-unit", **extra)
    env.pop("LAB_ENV_FILE", None)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_health_follows_the_mode_compose_names_at_in_network_addresses():
    """Lesson 00 probed spark-vod, spark-live and producer at 0.0.0.0 (the jupyter container itself)."""
    out = in_jupyter("""
        import json
        from lab.widgets import health
        print(json.dumps({"wanted": health.wanted_services(),
                          "probes": {n: p.address for n, p in health.container_probes().items()},
                          "spark-live": health.mode_name("spark-live")}))
    """)
    assert out["spark-live"] == "spark-job"
    assert set(out["wanted"]) <= SERVICES and "spark-job" in out["wanted"] and "mongodb" in out["wanted"]
    assert not {"spark-vod", "spark-live", "catalog"} & set(out["wanted"])
    assert out["probes"] == {
        "kafka": "kafka:29092", "s3": "http://s3:8333", "mongodb": "mongodb://mongodb:27017/",
        "prometheus": "http://prometheus:9090", "api": "http://api:8000",
        "spark-job": "http://spark-job:8766/metrics", "producer": "http://producer:8765/metrics",
        "jupyter": "http://jupyter:8888/api"}
    services = compose_config()["services"]
    assert set(out["probes"]) <= set(services)


def test_kernel_code_uses_internal_addresses_and_browser_urls_go_through_them():
    """The kernel fetched playlist and segment URLs made for http://localhost:..., the container itself."""
    out = in_jupyter("""
        import json
        from lab import playback, storage, urls
        from lab.config import settings
        playlist = playback.signed_playlist_url("vod-0123456789ab", "vod_manifest.m3u8")[0]
        segment = storage.presigned_get("vod-variants", "vod-0123456789ab/720p/0.ts")
        print(json.dumps({"routes": urls.routes(), "playlist": playlist, "segment": segment,
                          "via": [urls.internal(playlist), urls.internal(segment)],
                          "kafka": settings.kafka_servers, "mongo": settings.mongo_url}))
    """)
    api_port, s3_port = (compose_config()["services"][s]["ports"][0]["published"] for s in ("api", "s3"))
    assert out["routes"] == [[f"http://localhost:{api_port}", "http://api:8000"],
                             [f"http://localhost:{s3_port}", "http://s3:8333"]]
    assert out["playlist"].startswith(f"http://localhost:{api_port}/play/")  # for the browser
    assert out["segment"].startswith(f"http://localhost:{s3_port}/vod-variants/")
    (playlist_via, playlist_headers), (segment_via, segment_headers) = out["via"]
    assert playlist_via.startswith("http://api:8000/play/") and playlist_headers == {"Host": f"localhost:{api_port}"}
    assert segment_via.startswith("http://s3:8333/vod-variants/") and "X-Amz-Signature" in segment_via
    assert segment_headers == {"Host": f"localhost:{s3_port}"}  # the host the SigV4 signature covers
    assert out["kafka"] == "kafka:29092" and out["mongo"] == "mongodb://mongodb:27017/"


def test_lesson_08_prints_the_host_command_then_waits_a_bounded_time():
    """kill/stop/start raised in containers (after the lesson had started its background publisher)."""
    out = in_jupyter("""
        import contextlib, io, json
        from lab.widgets import lesson
        lesson.HOST_COMMAND_WAIT_S = 2
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            killed = lesson.kill_service("spark-live")   # spark-job does not answer here: the effect is seen
            try:
                lesson.start_service("spark-live")       # ... and never comes back: a bounded wait
                error = None
            except TimeoutError as exc:
                error = str(exc)
        print(json.dumps({"killed": killed, "printed": printed.getvalue(), "error": error,
                          "command": lesson.compose_command("stop", "catalog")}))
    """, LAB_SERVICE_HOSTS="spark-job=spark-job.invalid")
    assert out["killed"] is None
    assert "docker compose kill spark-job" in out["printed"] and "docker compose start spark-job" in out["printed"]
    assert out["error"] and "docker compose start spark-job" in out["error"]
    assert out["command"] == "docker compose stop mongodb"


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_the_container_test_sets_secrets_of_its_own(name):
    """tests/containers/compose.yml gives every lab service secrets that are not .env's committed ones, which
    containers mode refuses; the s3 service reads S3_SECRET_KEY from tests/containers/test.env."""
    import yaml

    from tests.unit.test_compose import env_file

    override = yaml.safe_load((ROOT / "tests" / "containers" / "compose.yml").read_text())
    secrets = override["x-test-secrets"]
    assert secrets[name] and secrets[name] != env_file()[name]
    lab_services = {n for n, svc in compose_source()["services"].items() if svc.get("env_file")}
    assert lab_services and all(override["services"][n]["environment"] == secrets for n in lab_services)
    test_env = dict(line.split("=", 1) for line in (ROOT / "tests" / "containers" / "test.env").read_text()
                    .splitlines() if line and not line.startswith("#"))
    assert test_env["S3_SECRET_KEY"] == secrets["S3_SECRET_KEY"]


def test_the_container_test_publishes_ports_of_its_own():
    """Its host ports collide with none of .env's (a learner's lab) or tests/stack.env's (`make test`)."""
    from tests.unit.test_compose import env_file

    def ports(path):
        return {v.split("#")[0].strip() for k, v in (line.split("=", 1) for line in path.read_text().splitlines()
                                                     if "=" in line and not line.startswith("#"))
                if k.endswith("_PORT")}

    own = ports(ROOT / "tests" / "containers" / "test.env")
    published = {k for k in env_file() if k.endswith("_PORT") and "${" + k + "}" in
                 (ROOT / "docker-compose.yml").read_text()}
    assert published <= {k for k in (ROOT / "tests" / "containers" / "test.env").read_text().split() if "=" in k
                         for k in [k.split("=")[0]]}, "every published port set for the test"
    assert not own & (ports(ROOT / ".env") | ports(ROOT / "tests" / "stack.env"))


def test_any_uid_gets_a_passwd_entry_in_the_lab_image():
    """The JVM reads the user's name and home from /etc/passwd, never $HOME: for the jupyter container's uid (the
    host's, with no entry in the image) user.home was `?` (Ivy: "basedir must be absolute: ?/.ivy2.5.2/local")
    and, past that, Hadoop's login failed ("Invalid UID, could not determine effective user"): lesson 03 showed
    JAVA_GATEWAY_EXITED. The image's entrypoint gives such a uid an entry through nss_wrapper (run for real by
    `make test-containers`: a SparkSession as uid 4242)."""
    from tests.unit.test_compose import DEPLOY, dockerfile_instructions

    steps = dockerfile_instructions(DEPLOY / "lab.Dockerfile")
    assert ("ENTRYPOINT", '["/usr/local/bin/lab-entrypoint"]') in steps
    assert any(w == "RUN" and "libnss-wrapper" in rest for w, rest in steps)
    script = (DEPLOY / "lab-entrypoint.sh").read_text()
    assert 'getent passwd "$uid"' in script and "NSS_WRAPPER_PASSWD" in script and 'exec "$@"' in script
    assert all(not svc.get("entrypoint") for svc in compose_config()["services"].values()
               if svc.get("image") == "streaming-lab/lab:0.1.0"), "a service replacing the entrypoint loses it"
