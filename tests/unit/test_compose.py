"""The container stack, checked without a Docker engine (these machines have only the docker client).

`docker compose config` must accept docker-compose.yml with the committed .env; images are pinned; every
service another waits for has a health check; host ports and credentials come from .env; every `lab X` the
images run is a subcommand the CLI knows; the dashboard and alert rules use only metrics the code exports.
The helpers that read metric names out of PromQL are shared with tests/integration/test_dashboard_metrics.py,
which checks the same names against the live /metrics of the embedded API.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from lab.versions import pin

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_FILE = ROOT / ".env"
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "pipeline.json"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DOCKERFILES = sorted(DEPLOY.glob("*.Dockerfile"))

# Series the dashboard and rules read from other programs than the lab (and so not in lab/metrics.py).
EXTERNAL_METRICS = {
    "up": "Prometheus itself (one series per scrape target)",
    "kafka_topic_partition_current_offset": "danielqsj/kafka-exporter",
    "mongodb_ss_opcounters": "percona/mongodb_exporter (serverStatus opcounters)",
}

SERVICES = {"kafka", "s3", "lab-init", "mongodb", "spark-master", "spark-worker", "spark-job", "api",
            "producer", "jupyter", "prometheus", "grafana", "redpanda-console", "mongo-express",
            "kafka-exporter", "mongodb-exporter"}
SECRET_KEYS = ("S3_ACCESS_KEY", "S3_SECRET_KEY", "GRAFANA_PASSWORD", "LAB_API_KEY", "URL_SIGNING_SECRET",
               "JUPYTER_TOKEN")
CREDENTIAL_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|API_KEY|_USER|USERNAME)$")
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?+-][^}]*)?\}")


# --- helpers -------------------------------------------------------------------------------------------

def env_file() -> dict[str, str]:
    """The committed .env (KEY=value, `#` comments), as compose reads it for interpolation."""
    values = {}
    for line in ENV_FILE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = re.split(r"\s+#", value, maxsplit=1)[0].strip()
    return values


@cache
def compose_config() -> dict:
    """`docker compose config` as JSON, with the committed .env and none of the caller's variables."""
    return compose_config_with()


def compose_config_with(**overrides: str) -> dict:
    """`docker compose config` as JSON, with the committed .env and `overrides` (variables) over it."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.fail("the `docker` client is not on PATH: these checks need `docker compose config` "
                    "(client only, no engine). Install the Docker CLI (docker-ce-cli, or Debian's docker.io) "
                    "and its compose plugin (see README.md, 'Checking the stack without Docker').", pytrace=False)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_CONFIG", "TMPDIR")} | overrides
    proc = subprocess.run([docker, "compose", "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE),
                           "--env-file", str(ENV_FILE), "config", "--format", "json"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    no_plugin = "is not a docker command" in proc.stderr or "unknown command" in proc.stderr
    if proc.returncode != 0 and no_plugin:
        pytest.fail("the docker client has no compose plugin: `docker compose version` fails. Install it "
                    "(see README.md, 'Checking the stack without Docker').", pytrace=False)
    assert proc.returncode == 0, f"docker compose config failed:\n{proc.stderr}"
    return json.loads(proc.stdout)


@cache
def compose_source() -> dict:
    """docker-compose.yml as written (anchors merged, `${...}` not yet interpolated)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def argv_of(command: object) -> list[str]:
    if command is None:
        return []
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def lab_argv(argv: list[str]) -> list[str] | None:
    """The arguments after `lab` when a command runs the lab CLI (`lab X`, `python -m lab X`), else None."""
    if argv and Path(argv[0]).name == "lab":
        return argv[1:]
    if len(argv) >= 3 and Path(argv[0]).name.startswith("python") and argv[1:3] == ["-m", "lab"]:
        return argv[3:]
    return None


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) with continuation lines joined, comments and heredoc bodies skipped."""
    out: list[tuple[str, str]] = []
    lines = iter(path.read_text().splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.rstrip().endswith("\\"):
            line = line.rstrip()[:-1] + " " + next(lines, "").strip()
        word, _, rest = line.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        heredoc = re.search(r"<<-?'?\"?(\w+)'?\"?", rest)
        if heredoc:
            for body in lines:
                if body.strip() == heredoc.group(1):
                    break
    return out


def image_is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name = image.rsplit("/", 1)[-1]
    return ":" in name and name.split(":", 1)[1] not in ("", "latest")


PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                   "unless", "offset", "inf", "nan", "start", "end"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (not functions, keywords, labels, durations or numbers)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\$\{?\w+\}?", "1m", text)                       # Grafana variables ($__rate_interval)
    text = re.sub(r"\{[^}]*\}", " ", text)                            # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)                           # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        if text[match.end():].lstrip().startswith("(") or word.lower() in PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def dashboard_exprs(dashboard: dict | None = None) -> list[str]:
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard if dashboard is not None else json.loads(DASHBOARD.read_text()))
    return found


def rule_exprs() -> list[str]:
    exprs = []
    for path in (PROMETHEUS_CONFIG, ALERTS):
        doc = yaml.safe_load(path.read_text()) or {}
        for group in doc.get("groups", []):
            exprs += [rule["expr"] for rule in group.get("rules", [])]
    return exprs


def referenced_metrics() -> dict[str, set[str]]:
    """metric name -> the files that use it, over the dashboard and the Prometheus config and rules."""
    used: dict[str, set[str]] = {}
    for source, exprs in ((DASHBOARD.name, dashboard_exprs()), (ALERTS.name, rule_exprs())):
        for expr in exprs:
            for name in promql_metric_names(expr):
                used.setdefault(name, set()).add(source)
    return used


def exported_series_names(exposition: str) -> set[str]:
    """Every series name a /metrics text can produce, from its TYPE lines (so labelled metrics that have not
    been used yet count too) and its samples."""
    suffixes = {"counter": ("", "_total", "_created"), "gauge": ("",), "untyped": ("",), "unknown": ("",),
                "info": ("", "_info"), "stateset": ("",),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created"),
                "gaugehistogram": ("_bucket", "_gsum", "_gcount")}
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            base = name.removesuffix("_total") if kind.strip() == "counter" else name
            names |= {base + s for s in suffixes.get(kind.strip(), ("",))} | {name}
        elif line and not line.startswith("#"):
            match = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
            if match:
                names.add(match.group(0))
    return names


def missing_metrics(exposition: str) -> dict[str, set[str]]:
    exported = exported_series_names(exposition)
    return {name: files for name, files in referenced_metrics().items()
            if name not in exported and name not in EXTERNAL_METRICS}


# --- compose -----------------------------------------------------------------------------------------

def test_compose_config_accepts_the_committed_env():
    config = compose_config()
    assert set(config["services"]) == SERVICES


def test_every_variable_compose_reads_is_in_env():
    env = env_file()
    # ${VAR:-default} (LAB_UID, LAB_GID: the host's ids, passed by `make containers-up`) need not be in .env
    used = {m.group(1) for m in VARIABLE.finditer(COMPOSE_FILE.read_text()) if ":-" not in m.group(0)}
    assert used, "docker-compose.yml reads no variable from .env"
    assert not used - set(env), f"docker-compose.yml reads variables .env lacks: {sorted(used - set(env))}"


def test_every_image_is_pinned():
    unpinned = [f"{name}: {svc.get('image')}" for name, svc in compose_config()["services"].items()
                if not image_is_pinned(svc.get("image", ""))]
    for path in DOCKERFILES:
        stages = set()
        for word, rest in dockerfile_instructions(path):
            if word != "FROM":
                continue
            parts = [p for p in rest.split() if not p.startswith("--")]
            if parts[0] not in stages and not image_is_pinned(parts[0]):
                unpinned.append(f"{path.name}: FROM {parts[0]}")
            if len(parts) >= 3 and parts[1].lower() == "as":
                stages.add(parts[2])
    assert not unpinned, f"images without a pinned tag: {unpinned}"


def test_dockerfiles_exist_for_every_build():
    for name, svc in compose_config()["services"].items():
        if "build" in svc:
            dockerfile = Path(svc["build"]["context"]) / svc["build"].get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"{name} builds from {dockerfile}, which does not exist"
            assert dockerfile.parent == DEPLOY, f"{name}: Dockerfiles live in deploy/"


def test_every_dependency_is_healthy_or_completed_before_its_dependents_start():
    services = compose_config()["services"]
    problems = []
    for name, svc in services.items():
        for dep, rule in (svc.get("depends_on") or {}).items():
            condition = rule.get("condition")
            if condition == "service_completed_successfully":
                continue
            if condition != "service_healthy":
                problems.append(f"{name} waits for {dep} with {condition!r}, not service_healthy")
            check = services[dep].get("healthcheck") or {}
            if not check.get("test") or check.get("disable"):
                problems.append(f"{name} depends on {dep}, which has no health check")
    assert not problems, "\n".join(problems)


def test_lab_init_provisions_and_the_apps_wait_for_it():
    services = compose_config()["services"]
    assert services["lab-init"]["command"] == ["lab", "provision"]
    for name in ("api", "producer", "spark-job"):
        assert services[name]["depends_on"]["lab-init"]["condition"] == "service_completed_successfully", name


def test_host_ports_come_from_env():
    bad = []
    for name, svc in compose_source()["services"].items():
        for port in svc.get("ports", []):
            spec = port if isinstance(port, str) else str(port.get("published", ""))
            host = spec.rsplit(":", 1)[0] if isinstance(port, str) else spec
            host = re.sub(r"^(127\.0\.0\.1|0\.0\.0\.0|\[::1?\]):", "", host)
            if not re.fullmatch(r"\$\{[A-Z0-9_]+\}", host):
                bad.append(f"{name}: {spec}")
    assert not bad, f"host ports not taken from .env: {bad}"


def test_credentials_come_from_env():
    bad = []
    for name, svc in compose_source()["services"].items():
        environment = svc.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        for key, value in environment.items():
            if CREDENTIAL_NAME.search(key) and not re.fullmatch(r"\$\{[A-Z0-9_]+\}", str(value)):
                bad.append(f"{name}: {key}={value}")
    assert not bad, f"credentials not taken from .env: {bad}"
    env = env_file()
    files = [COMPOSE_FILE, *DOCKERFILES, PROMETHEUS_CONFIG, ALERTS, DASHBOARD,
             *(DEPLOY / "grafana" / "provisioning").rglob("*.yml")]
    for key in SECRET_KEYS:
        secret = re.compile(rf"(?<![\w-]){re.escape(env[key])}(?![\w-])")
        leaked = [p.relative_to(ROOT).as_posix() for p in files if secret.search(p.read_text())]
        assert not leaked, f"the value of {key} is written literally in {leaked}: use ${{{key}}}"


def test_every_lab_command_is_a_cli_subcommand():
    from lab.cli import build_parser

    parser = build_parser()
    commands = []
    for name, svc in compose_config()["services"].items():
        argv = argv_of(svc.get("entrypoint")) + argv_of(svc.get("command"))
        args = lab_argv(argv)
        if args is not None:
            commands.append((f"docker-compose.yml {name}", args))
    for path in DOCKERFILES:
        for word, rest in dockerfile_instructions(path):
            if word in ("CMD", "ENTRYPOINT") and rest.startswith("["):
                args = lab_argv(json.loads(rest))
                if args is not None:
                    commands.append((path.name, args))
    assert commands, "no service runs the lab CLI"
    for where, args in commands:
        if args and args[0].startswith("-"):
            continue  # `lab --help`
        try:
            parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"{where}: `lab {' '.join(args)}` is not a command the lab CLI accepts",
                        pytrace=False)


def test_the_apps_run_the_same_entrypoints_as_embedded_mode():
    services = compose_config()["services"]
    assert services["api"]["command"][:2] == ["lab", "api"]
    assert services["producer"]["command"][:2] == ["lab", "producer"]
    assert services["spark-job"]["command"] == ["lab", "spark-job", "--query", "all"]
    # One image for every process of the lab's own (the pip layer is 1.3 GB: built and stored once); it has
    # Java, so lesson 03 starts a SparkSession in the jupyter kernel
    lab_services = ("api", "producer", "lab-init", "jupyter", "spark-master", "spark-worker", "spark-job")
    assert {services[s]["image"] for s in lab_services} == {"streaming-lab/lab:0.1.0"}
    assert {services[s]["build"]["dockerfile"] for s in lab_services} == {"deploy/lab.Dockerfile"}


def test_spark_job_submits_to_the_compose_master_and_can_be_called_back():
    services = compose_config()["services"]
    job = services["spark-job"]
    assert job["environment"]["SPARK_MASTER"] == "spark://spark-master:7077"
    assert job["environment"]["LAB_HOST"] == "0.0.0.0"
    # lab.streaming.session uses the host name as spark.driver.host when binding to 0.0.0.0
    assert job.get("hostname") == "spark-job"
    assert "spark-master:7077" in " ".join(services["spark-worker"]["command"])
    image = (DEPLOY / "lab.Dockerfile").read_text()
    jars = re.search(r"ENV LAB_SPARK_JARS=(\S+)", image)
    assert jars, "lab.Dockerfile must set LAB_SPARK_JARS"
    version = pyspark_pin()
    assert all(version in jar for jar in jars.group(1).split(",") if "spark" in Path(jar).name)


def test_jupyter_mounts_the_notebooks_and_takes_its_token_from_env():
    jupyter = compose_config()["services"]["jupyter"]
    assert any(v["source"] == str(ROOT / "notebooks") for v in jupyter.get("volumes", []))
    assert jupyter["environment"]["JUPYTER_TOKEN"] == env_file()["JUPYTER_TOKEN"]


def test_jupyter_in_both_modes_reads_the_lab_settings_that_silence_the_news_toast():
    from lab.stack import services

    argv = argv_of(compose_config()["services"]["jupyter"]["command"])
    assert any("--LabApp.app_settings_dir=/app/lab/jupyter_settings" in a for a in argv), argv
    assert f"--LabApp.app_settings_dir={services.JUPYTER_SETTINGS}" in services._jupyter_command()
    overrides = json.loads((services.JUPYTER_SETTINGS / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"


def test_infrastructure_keeps_its_data_in_named_volumes():
    services = compose_config()["services"]
    for name in ("kafka", "s3", "mongodb", "prometheus", "grafana"):
        kinds = {v["type"] for v in services[name].get("volumes", [])}
        assert "volume" in kinds, f"{name} keeps its data in no named volume"


def pyspark_pin() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'"pyspark==([\w.]+)"', text).group(1)


def test_images_follow_the_versions_pinned_in_pyproject():
    services = compose_config()["services"]
    assert services["kafka"]["image"] == f"apache/kafka:{pin('kafka')}"
    assert services["mongodb"]["image"].startswith("mongo:7.0.")
    # Prometheus' Go module tag v0.3MM.P is release 3.MM.P
    major, minor, patch = re.fullmatch(r"v0\.(\d)(\d\d)\.(\d+)", pin("prometheus")).groups()
    assert services["prometheus"]["image"] == f"prom/prometheus:v{major}.{int(minor)}.{patch}"
    seaweed = (DEPLOY / "seaweedfs.Dockerfile").read_text()
    assert f"ARG SEAWEEDFS_VERSION={pin('seaweedfs')}" in seaweed
    assert f"ARG HLSJS_VERSION={pin('hlsjs')}" in (DEPLOY / "lab.Dockerfile").read_text()


# --- Prometheus and Grafana -----------------------------------------------------------------------------

def test_prometheus_scrapes_every_lab_process_and_exporter():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {job["job_name"]: [t for sc in job.get("static_configs", []) for t in sc["targets"]]
               for job in config["scrape_configs"]}
    for job in ("api", "producer", "spark-job", "kafka-exporter", "mongodb-exporter", "seaweedfs"):
        assert targets.get(job), f"Prometheus does not scrape {job}"
    services = compose_config()["services"]
    for job, hosts in targets.items():
        for target in hosts:
            host = target.split(":")[0]
            assert host == "localhost" or host in services, f"{job} scrapes {target}: no such service"
    assert "/etc/prometheus/alerts.yml" in config.get("rule_files", [])
    mounts = {v["target"]: v["source"] for v in services["prometheus"]["volumes"]}
    assert mounts["/etc/prometheus"] == str(PROMETHEUS_CONFIG.parent)


def test_lab_metric_ports_match_the_scrape_targets():
    env = compose_config()["services"]
    assert env["api"]["environment"]["API_PORT"] == "8000"
    assert env["producer"]["environment"]["PRODUCER_METRICS_PORT"] == "8765"
    assert env["spark-job"]["environment"]["SPARK_VOD_METRICS_PORT"] == "8766"  # `--query all` serves here


def test_grafana_is_provisioned_with_the_datasource_and_dashboard():
    services = compose_config()["services"]
    mounts = {v["target"]: Path(v["source"]) for v in services["grafana"]["volumes"] if v["type"] == "bind"}
    provisioning = mounts["/etc/grafana/provisioning"]
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    uids = {d["uid"] for d in datasources}
    assert any(d["url"] == "http://prometheus:9090" for d in datasources)
    providers = yaml.safe_load((provisioning / "dashboards" / "dashboard.yml").read_text())["providers"]
    path = providers[0]["options"]["path"]
    assert mounts[path] == DASHBOARD.parent
    dashboard = json.loads(DASHBOARD.read_text())
    refs = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ds = node.get("datasource")
            if isinstance(ds, dict) and "uid" in ds:
                refs.add(ds["uid"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard)
    assert refs and refs <= uids, f"dashboard uses datasources {refs - uids} that are not provisioned"
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == env_file()["GRAFANA_PASSWORD"]


def test_dashboard_has_the_reference_panels():
    exprs = " ".join(dashboard_exprs())
    for needed in ("producer_messages_total", 'stream_type="live"', 'stream_type="vod"',
                   "live_chunk_gaps_total", "chunk_checksum_failures_total", "catalog_operations_total",
                   "s3_bucket_bytes",
                   "api_requests_total", "api_request_duration_seconds_bucket", "kafka_consumer_lag",
                   "vod_transcode_seconds", "dead_letter_events_total"):
        assert needed in exprs, f"no dashboard panel reads {needed}"
    for q in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(chunk_processing_latency_seconds_bucket" in exprs


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (stream_type) (rate(producer_messages_total[$__rate_interval]))', {"producer_messages_total"}),
    ('histogram_quantile(0.95, sum by (le) '
     '(rate(chunk_processing_latency_seconds_bucket{stream_type="live"}[2m]))) > 2',
     {"chunk_processing_latency_seconds_bucket"}),
    ("sum(rate(a_sum[5m])) / sum(rate(a_count[5m])) * 1e6", {"a_sum", "a_count"}),
    ('up == 0 and on (job) b_total offset 5m', {"up", "b_total"}),
    ('sum(x{route=~"/vod/.*"}) without (instance)', {"x"}),
])
def test_promql_metric_names(expr, names):
    assert promql_metric_names(expr) == names


def test_dashboard_and_rules_use_only_metrics_the_code_exports():
    """In-process twin of tests/integration/test_dashboard_metrics.py, on the exposition of lab/metrics.py."""
    from prometheus_client import REGISTRY, generate_latest

    import lab.metrics  # noqa: F401  (registers every metric of the lab)

    used = referenced_metrics()
    assert len(used) > 10
    missing = missing_metrics(generate_latest(REGISTRY).decode())
    assert not missing, f"metrics the dashboard/rules read but lab/metrics.py does not export: {missing}"


# --- a laptop-sized stack, builds and ownership (issue 14) ------------------------------------------------

LAPTOP_MIB = 6 * 1024   # what Docker Desktop may give its VM on an 8 GB laptop, the VM's own needs aside
FFMPEG_SERVICES = ("api", "producer", "spark-worker", "spark-job", "jupyter")


def mib(size: str | int) -> float:
    """Bytes (compose's JSON) or a JVM/compose size (`384m`, `1g`) in MiB."""
    text = str(size).strip().lower()
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else int(text) / 2**20


def mem_limits() -> dict[str, float]:
    return {name: mib(svc["mem_limit"]) for name, svc in compose_config()["services"].items()
            if svc.get("mem_limit")}


def test_every_service_has_a_memory_limit_and_all_fit_a_laptop():
    limits = mem_limits()
    assert set(limits) == SERVICES, f"no mem_limit: {sorted(SERVICES - set(limits))}"
    total = sum(limits.values())
    assert total <= LAPTOP_MIB, f"the limits add up to {total:.0f} MiB, more than {LAPTOP_MIB} MiB"
    readme = (ROOT / "README.md").read_text()
    assert f"{total:.0f} MiB" in readme, f"README.md does not state the limits' total, {total:.0f} MiB"


def test_jvm_heaps_fit_inside_their_containers():
    """Heap plus the JVM's own memory within the limit, and for Spark the Python processes beside it."""
    services = compose_config()["services"]
    limits = mem_limits()
    env = env_file()
    jvm = 150  # a HotSpot 17 daemon's metaspace, code cache, GC and thread stacks: an estimate, not measured here

    def heap(name: str, key: str) -> float:
        value = services[name]["environment"].get(key) or env[key]
        return mib(value)

    kafka_heap = re.search(r"-Xmx(\w+)", services["kafka"]["environment"]["KAFKA_HEAP_OPTS"]).group(1)
    assert mib(kafka_heap) + jvm <= limits["kafka"]
    assert heap("spark-master", "SPARK_DAEMON_MEMORY") + jvm <= limits["spark-master"]
    worker = heap("spark-worker", "SPARK_DAEMON_MEMORY") + jvm + mib(env["SPARK_WORKER_MEMORY"]) + jvm
    python_and_ffmpeg = 250 * int(env["SPARK_WORKER_CORES"])
    assert worker + python_and_ffmpeg <= limits["spark-worker"], "worker daemon + executor + Python workers"
    worker_offers = re.search(r"--memory (\S+)", " ".join(services["spark-worker"]["command"])).group(1)
    assert mib(worker_offers) >= mib(env["SPARK_WORKER_MEMORY"]), "the executor must fit what the worker offers"
    for name in ("spark-job", "jupyter"):  # the driver, and lesson 03's SparkSession in a kernel
        assert heap(name, "SPARK_DRIVER_MEMORY") + jvm + 150 <= limits[name], name
    # Spark refuses a driver or executor heap under 450 MiB (UnifiedMemoryManager's minimum system memory)
    for size in (heap("spark-job", "SPARK_DRIVER_MEMORY"), heap("jupyter", "SPARK_DRIVER_MEMORY"),
                 mib(env["SPARK_WORKER_MEMORY"])):
        assert size >= 450


def test_ffmpeg_runs_under_an_init_process():
    services = compose_config()["services"]
    assert [n for n in FFMPEG_SERVICES if not services[n].get("init")] == []


def test_kafka_healthcheck_starts_no_jvm_and_the_host_listener_is_ipv4():
    kafka = compose_config()["services"]["kafka"]
    test = " ".join(kafka["healthcheck"]["test"])
    assert ".sh" not in test and "java" not in test, "a JVM every 5 s"
    assert "/dev/tcp/127.0.0.1/29092" in test
    advertised = kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "localhost" not in advertised and "EXTERNAL://127.0.0.1:" in advertised


def test_the_spark_ports_the_containers_are_told_are_the_ones_spark_job_serves():
    """One application serves both queries: no container is told of a spark-live port (4041, 8767) that
    nothing publishes or serves."""
    services = compose_config()["services"]
    job = services["spark-job"]
    published = {p["target"] for p in job.get("ports", [])}
    for name, svc in services.items():
        env = svc.get("environment") or {}
        for key in ("SPARK_VOD_UI_PORT", "SPARK_LIVE_UI_PORT"):
            assert key not in env or int(env[key]) in published, f"{name}: {key}={env[key]}"
        for key in ("SPARK_VOD_METRICS_PORT", "SPARK_LIVE_METRICS_PORT"):
            assert key not in env or env[key] == "8766", f"{name}: {key}={env[key]}"


def test_seaweedfs_publishes_only_the_s3_gateway():
    """The filer and the volume server serve objects without S3 auth (issue 11): not published, and bound to the
    s3 container's loopback."""
    s3 = compose_config()["services"]["s3"]
    assert [p["target"] for p in s3["ports"]] == [8333]
    script = (DEPLOY / "seaweedfs-s3.sh").read_text()
    for flag in ("-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3.ip.bind=0.0.0.0"):
        assert flag in script, flag
    exposed = next(rest for word, rest in dockerfile_instructions(DEPLOY / "seaweedfs.Dockerfile") if word == "EXPOSE")
    assert "8888" not in exposed and "8080" not in exposed


def test_jupyter_runs_as_the_host_user_and_starts_as_root_too():
    """`make containers-up` as root (a CI box) gives LAB_UID=0, and JupyterLab refuses root without
    --allow-root: found by reading (issue 23), run for real by `make test-containers` as root in CI."""
    jupyter = compose_config()["services"]["jupyter"]
    assert jupyter["user"] == "1000:1000"  # ${LAB_UID:-1000}:${LAB_GID:-1000}; make containers-up passes id -u
    assert "--allow-root" in " ".join(argv_of(jupyter["command"]))
    assert jupyter["environment"]["HOME"] == "/home/lab"
    makefile = (ROOT / "Makefile").read_text()
    assert "LAB_UID=$$(id -u)" in makefile and "LAB_GID=$$(id -g)" in makefile
    image = (DEPLOY / "lab.Dockerfile").read_text()
    assert "chmod 1777 /var/lib/lab /home/lab" in image, "the state dir and HOME must be writable by any uid"


def test_the_image_fetches_the_connector_rather_than_expecting_it(tmp_path, monkeypatch, capsys):
    """spark_kafka_jars() raises ToolMissing when the jars are not on disk yet, as in a fresh image: the Spark
    image never built (issue 23). The Dockerfile's step, run here on an empty tools dir (Maven Central stood in
    for by a resolver that writes one jar), must fetch them."""
    from lab import toolpaths
    from lab.stack import tools

    code = next(re.search(r'python -c "([^"]+)"', rest).group(1)
                for word, rest in dockerfile_instructions(DEPLOY / "lab.Dockerfile")
                if word == "RUN" and "lab.stack.tools" in rest)
    monkeypatch.setattr(toolpaths, "spark_kafka_dir", lambda: tmp_path / "spark-sql-kafka")

    def resolve(deps, dest):
        dest.mkdir()
        (dest / "spark-sql-kafka-0-10_2.13-4.2.0.jar").write_bytes(b"")

    monkeypatch.setattr(tools, "_ivy_retrieve", resolve)
    exec(code, {})  # noqa: S102 - the Dockerfile's own one-liner
    assert "spark-sql-kafka-0-10_2.13-4.2.0.jar" in capsys.readouterr().out


def test_every_xml_file_the_lab_ships_parses():
    """lab/streaming/fairscheduler.xml had `--` in a comment, which XML forbids: Spark refused it (SAXParseException)
    and spark-job crash-looped in the container stack; embedded mode never read the file."""
    import xml.etree.ElementTree as ET

    files = [p for folder in (ROOT / "lab", DEPLOY) for p in folder.rglob("*.xml")]
    assert ROOT / "lab" / "streaming" / "fairscheduler.xml" in files
    for path in files:
        ET.parse(path)  # expat: the same well-formedness rules as Spark's parser


def test_no_kafka_port_collides_with_the_brokers_fixed_listeners():
    """EXTERNAL once listened on ${KAFKA_PORT} inside the container too: a KAFKA_PORT of 29092 or 9093
    collided with INTERNAL or CONTROLLER, and nothing said so. Now each listener has a fixed port in the
    container and only the published port follows KAFKA_PORT; checked with the two that collided."""
    for port in ("29092", "9093"):
        kafka = compose_config_with(KAFKA_PORT=port)["services"]["kafka"]
        listeners = dict(re.findall(r"(\w+)://[^:,]+:(\d+)", kafka["environment"]["KAFKA_LISTENERS"]))
        assert len(set(listeners.values())) == len(listeners), listeners
        assert [(p["published"], p["target"]) for p in kafka["ports"]] == [(port, int(listeners["EXTERNAL"]))]
        assert f"EXTERNAL://127.0.0.1:{port}" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def test_jupyter_has_the_dashboard_lesson_07_draws():
    """Without it lab/widgets/charts.py fell back to its 6 built-in panels (of 31) in the container."""
    jupyter = compose_config()["services"]["jupyter"]
    mounts = {v["target"]: Path(v["source"]) for v in jupyter["volumes"]}
    assert mounts["/app/deploy/grafana/dashboards"] == DASHBOARD.parent  # lab.config.ROOT is /app in the image


def test_charts_builtin_panels_are_in_step_with_the_dashboard():
    """A maintainer's check (it was in lesson 07): the fallback copy in lab/widgets/charts.py matches the file."""
    from lab.widgets import charts

    panels = charts.dashboard_panels()
    drifted = [b.title for b in charts._BUILTIN if b.title not in panels or b.targets != panels[b.title].targets]
    assert not drifted, f"built-in panels that differ from {DASHBOARD.name}: {drifted}"


def dockerignore_allows(path: str) -> bool:
    """`path` is in the build context under .dockerignore's rules (last match wins; `!` lets in)."""
    from fnmatch import fnmatch

    allowed = True
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
        if fnmatch(path, pattern) or path.startswith(pattern + "/") or fnmatch(path.split("/")[0], pattern):
            allowed = negate
    return allowed


def test_the_build_context_holds_what_the_dockerfiles_copy_and_nothing_big():
    sources = []
    for path in DOCKERFILES:
        for word, rest in dockerfile_instructions(path):
            if word == "COPY" and "--from" not in rest and "<<" not in rest:
                sources += [s for s in rest.split()[:-1] if not s.startswith("--")]
    assert sources, "no COPY from the build context"
    assert [s for s in sources if not dockerignore_allows(s.rstrip("/"))] == []
    for heavy in (".venv", ".lab", "data", ".git", "notebooks", "tests"):
        assert not dockerignore_allows(heavy), f"{heavy} would be sent to every build"


def test_dependencies_are_installed_before_the_code_is_copied():
    """A code change must not re-download pyspark (about 1 GB): pip installs pyproject.toml's dependencies in a
    layer of its own, then the lab package with --no-deps."""
    for name in ("lab.Dockerfile",):
        steps = dockerfile_instructions(DEPLOY / name)
        copy_code = next(i for i, (w, rest) in enumerate(steps) if w == "COPY" and rest.startswith("lab "))
        deps = next(i for i, (w, rest) in enumerate(steps) if w == "RUN" and "pip install -r" in rest)
        assert deps < copy_code, name
        assert all("--no-deps" in rest for w, rest in steps[copy_code:] if w == "RUN" and "pip install" in rest)


def test_scripts_and_dockerfiles_check_out_with_lf():
    for path in ("deploy/seaweedfs.Dockerfile", "deploy/lab.Dockerfile", "deploy/seaweedfs-s3.sh",
                 "tests/containers/bases.sh", "tests/containers/standins/kafka-start.sh", "docker-compose.yml",
                 ".env"):
        out = subprocess.run(["git", "check-attr", "eol", "--", path], cwd=ROOT, capture_output=True, text=True)
        assert out.stdout.strip().endswith("eol: lf"), out.stdout


def test_every_deploy_file_the_docs_name_exists():
    """docker-compose.yml and the README once pointed at a deploy/README-containers.md that did not exist."""
    for doc in (COMPOSE_FILE, ROOT / "README.md", *DOCKERFILES):
        for ref in set(re.findall(r"\bdeploy/[\w./-]*\w", doc.read_text())):
            assert (ROOT / ref).exists(), f"{doc.name} names {ref}, which does not exist"
