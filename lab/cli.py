"""`lab`: one command for the embedded stack, the pipeline's processes, uploads and benchmarks.

Errors a user can fix (a missing prerequisite, a port in use, a bad argument) print one line and exit 1,
never a stack trace. Container images run the same subcommands (`lab api`, `lab spark-job`, ...).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from lab.config import settings


def _print(*lines: str) -> None:
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _table(rows: list[tuple], header: tuple) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        _print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# --- stack lifecycle ------------------------------------------------------------------------------

def cmd_setup(args: argparse.Namespace) -> None:
    from lab.stack import tools

    if args.bundle:
        from lab.stack import bundle

        bundle.install(args.bundle.resolve())  # then ensure_all finds every tool in place: nothing is fetched
    tools.ensure_all()
    if args.for_tests:
        tools.chromium()
        tools.compose_plugin()
    from lab.producer.clips import ensure_sample_clips

    ensure_sample_clips(report=tools.step)


def cmd_bundle(args: argparse.Namespace) -> None:
    from lab.stack import bundle

    platforms = args.platform.split(",") if args.platform else [bundle.host_platform()]
    bundle.build(platforms, args.python.split(","), args.out.resolve(), report=_print)


def cmd_up(args: argparse.Namespace) -> None:
    from lab import stack

    stack.up(args.services or None)
    if args.ui_map:
        cmd_ui(args)


def cmd_down(args: argparse.Namespace) -> None:
    from lab import stack

    stopped = stack.down()
    _print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def cmd_status(args: argparse.Namespace) -> None:
    from lab import stack

    rows = stack.status()
    table = [(s.name, s.pid or "-", s.port, _health(s), f"{s.rss_bytes / 2**20:.0f} MiB" if s.pid else "-",
              s.restarts) for s in rows]
    _table(table, ("service", "pid", "port", "health", "rss", "restarts"))
    _print(f"total RSS of the running stack: {sum(s.rss_bytes for s in rows) / 2**30:.2f} GiB",
           *(s.note for s in rows if s.note))


def _health(s) -> str:
    if s.note:
        return "CRASH-LOOP"
    return "healthy" if s.healthy else ("UNHEALTHY" if s.pid else "stopped")


def cmd_supervise(args: argparse.Namespace) -> None:
    from lab.stack import watch

    watch.run()


def cmd_doctor(args: argparse.Namespace) -> None:
    from lab.stack import doctor

    text, ok = doctor.report(doctor.run_checks())
    _print(text)
    if not ok:
        raise SystemExit(1)


def cmd_logs(args: argparse.Namespace) -> None:
    from lab.stack import supervisor

    path = supervisor.log_file(args.service)
    if not path.exists():
        raise SystemExit(f"no log for {args.service!r} at {path}")
    _print(supervisor.tail(path, args.lines))


def cmd_provision(args: argparse.Namespace) -> None:
    """Topics, buckets and indexes on already-running services (the container stack's init step)."""
    from lab import catalog, storage, topics

    topics.ensure_topics()
    storage.ensure_buckets()
    catalog.ensure_indexes()
    _print("provisioned: topics, buckets, catalog indexes")


def cmd_reset(args: argparse.Namespace) -> None:
    from lab import stack

    stack.reset()


def cmd_ui(args: argparse.Namespace) -> None:
    from lab import stack

    _print("", "UI access map")
    _table(stack.ui_map(), ("service", "URL", "credentials", "purpose"))


# --- the pipeline's processes ---------------------------------------------------------------------

def cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    uvicorn.run("lab.api.app:app", host=args.host or settings.lab_host, port=settings.api_port,
                log_level="warning", access_log=False)


def cmd_spark_job(args: argparse.Namespace) -> None:
    from lab.streaming.job import main as spark_main

    spark_main(args.query)


def cmd_producer(args: argparse.Namespace) -> None:
    from lab.producer.main import main as producer_main

    producer_main(vod=not args.no_vod, live=not args.no_live)


def cmd_live_ingest(args: argparse.Namespace) -> None:
    from lab.live_ingest.service import main as ingest_main

    ingest_main(args.host)


def cmd_live(args: argparse.Namespace) -> None:
    from lab.live_ingest.obs import obs_settings, start

    _print(*obs_settings(start(args.protocol, args.title)))


def cmd_upload(args: argparse.Namespace) -> None:
    from lab.producer.upload import upload_cli

    upload_cli(args.file, title=args.title, watch=args.watch)


def cmd_bench(args: argparse.Namespace) -> None:
    if args.what == "vod":
        from lab.bench.vod import run as bench_vod

        bench_vod(seconds=args.seconds)
    elif args.what == "playback":
        from lab.bench.playback import run as bench_playback

        bench_playback(clients=args.clients, seconds=args.duration)
    elif args.what == "glass":
        from lab.bench.glass import run as bench_glass

        bench_glass(streams=args.streams, seconds=args.duration, resolution=args.resolution)
    elif args.what == "catalog":
        from lab.bench.catalog import run as bench_catalog

        bench_catalog(docs=args.docs, keep=args.keep, without_index=args.without_index)
    else:
        from lab.bench.live import run as bench_live

        bench_live(streams=args.streams, rate=args.rate, duration=args.duration,
                   engines=[e.strip() for e in args.engine.split(",") if e.strip()],
                   find_knee=args.find_knee, with_vod=args.with_vod)


def cmd_soak(args: argparse.Namespace) -> None:
    from lab import soak

    if args.lessons is not None:
        rows = soak.lesson_day(args.lessons)
        if any(r["result"] != "ok" for r in rows):
            raise SystemExit(1)
        return
    soak.run(hours=args.hours, speed=args.speed, csv_path=args.csv)


def cmd_lessons(args: argparse.Namespace) -> None:
    from lab import lessons

    try:
        _print(*lessons.restore([] if "all" in args.lessons else args.lessons))
    except lessons.LessonError as exc:
        raise SystemExit(f"lab lessons: {exc}") from None


def cmd_progress(args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    from lab.exercises import progress

    if args.merge:
        _print(*progress.merge([Path(p) for p in args.merge]))
    elif args.json:
        _print(json.dumps(progress.report(), indent=1))
    else:
        _print(*progress.lines(progress.report()))


def cmd_sandbox(args: argparse.Namespace) -> None:
    from lab.exercises import sandbox

    _print(*(sandbox.reset() or ["the sandbox was empty"]))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lab", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("setup", cmd_setup, "fetch or build every tool once, make the sample clips")
    p.add_argument("--for-tests", action="store_true",
                   help="also what only the tests need: Chromium, the docker compose plugin")
    p.add_argument("--bundle", type=Path, default=None,
                   help="install from a room bundle (`lab bundle`'s archive or its unpacked folder): no network")
    p = add("bundle", cmd_bundle, "build room bundles: one archive per platform with everything set-up fetches")
    p.add_argument("--platform", default=None, help="comma-separated: linux/amd64, linux/arm64, darwin/arm64, "
                                                    "darwin/amd64 (default: this machine's)")
    p.add_argument("--python", default="3.11,3.12,3.13", help="comma-separated Python versions of the wheels")
    p.add_argument("--out", type=Path, default=Path("bundles"), help="folder the archives are written to")
    p = add("up", cmd_up, "start the embedded stack (or only the named services)")
    p.add_argument("services", nargs="*", metavar="SERVICE")
    p.add_argument("--ui-map", action="store_true", help="print the UI access map when ready")
    add("down", cmd_down, "stop every service of the stack")
    add("status", cmd_status, "service, pid, port, health, memory and restarts of each service")
    add("supervise", cmd_supervise, "restart dead services with backoff (`lab up` starts it detached)")
    add("doctor", cmd_doctor, "check this machine for the lab: [OK]/[FAIL] with the fix for each")
    p = add("logs", cmd_logs, "show the end of a service's log")
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("-n", "--lines", type=int, default=60)
    add("reset", cmd_reset, "stop everything and wipe the stack's data")
    add("provision", cmd_provision, "create topics, buckets and indexes on running services (idempotent)")
    add("ui", cmd_ui, "print the UI access map")
    p = add("api", cmd_api, "run the FastAPI control plane (foreground)")
    p.add_argument("--host", default=None, help="bind address (containers: 0.0.0.0)")
    p = add("spark-job", cmd_spark_job, "run a Spark Structured Streaming query (foreground)")
    p.add_argument("--query", choices=["vod", "live", "all"], default="all")
    p = add("producer", cmd_producer, "run the VOD uploader and the live encoder (foreground)")
    p.add_argument("--no-vod", action="store_true")
    p.add_argument("--no-live", action="store_true")
    p = add("live-ingest", cmd_live_ingest, "run the ingest service: RTMP/SRT listeners, browser camera (foreground)")
    p.add_argument("--host", default=None, help="bind address (containers: 0.0.0.0)")
    p = add("live", cmd_live, "go live yourself: `lab live ingest` starts a stream and prints what to type into OBS")
    p.add_argument("action", choices=["ingest"])
    p.add_argument("--protocol", choices=["rtmp", "srt"], default="rtmp")
    p.add_argument("--title", default=None)
    p = add("upload", cmd_upload, "upload a video file for VOD and follow it to ready")
    p.add_argument("file")
    p.add_argument("--title", default=None)
    p.add_argument("--watch", action="store_true", help="follow the status until ready or failed")
    p = add("bench", cmd_bench, "measure the pipeline (prints figures; never pass/fail)")
    p.add_argument("what", choices=["vod", "live", "playback", "catalog", "glass"])
    p.add_argument("--seconds", type=_positive(float), default=30.0, help="vod: clip length")
    p.add_argument("--streams", type=_positive(int), default=1, help="live: concurrent streams")
    p.add_argument("--rate", type=_positive(float), default=0.5, help="live: chunks/s per stream")
    p.add_argument("--duration", type=_positive(float), default=30.0, help="live: seconds of replay; glass: of playing")
    p.add_argument("--engine", default="spark,plain",
                   help="live: engines side by side: spark (spark-live), plain, executors, statestore (bench apps)")
    p.add_argument("--find-knee", action="store_true", help="live: double the rate until each engine falls behind")
    p.add_argument("--with-vod", action="store_true", help="live: a quiet run, then one beside a VOD upload loop")
    p.add_argument("--clients", type=_positive(int), default=32, help="playback: concurrent viewers")
    p.add_argument("--resolution", default="640x360", help="glass: the real-time encoders' picture size")
    p.add_argument("--docs", type=_positive(int), default=100_000, help="catalog: filler documents to add")
    p.add_argument("--keep", action="store_true", help="catalog: leave the filler documents in place")
    p.add_argument("--without-index", action="store_true",
                   help="catalog: measure without the SQLite _id index the lab adds (FerretDB's own behaviour)")
    p = add("soak", cmd_soak, "an accelerated workshop day on the running stack: samples, table and CSV")
    p.add_argument("--hours", type=_positive(float), default=8.0, help="simulated hours")
    p.add_argument("--speed", type=_positive(float), default=24.0, help="times the producer's rates")
    p.add_argument("--csv", type=Path, default=None, help="where to write every sample (default: state dir)")
    p.add_argument("--lessons", nargs="*", default=None, metavar="LESSON",
                   help="instead: a learner's day, every lesson (or those named) back to back on this stack")
    p = add("lessons", cmd_lessons, "put lesson notebooks back as shipped, e.g. `lab lessons restore 04`")
    p.add_argument("action", choices=["restore"])
    p.add_argument("lessons", nargs="+", metavar="LESSON", help="lesson numbers (04) or names, or `all`")
    p = add("progress", cmd_progress, "which exercises passed, per lesson (--json for an instructor)")
    p.add_argument("--json", action="store_true", help="as JSON, to gather a room's with `lab progress --merge`")
    p.add_argument("--merge", nargs="+", metavar="FILE", help="a room's `lab progress --json` files, one table")
    p = add("sandbox", cmd_sandbox, "delete what the build-it exercises made (topics mine-*, collections mine_*)")
    p.add_argument("action", choices=["reset"])
    return parser


def _positive(kind: type) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value

    return parse


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "py4j", "botocore", "urllib3"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    from lab.stack.bundle import BundleError
    from lab.stack.supervisor import StackError
    from lab.stack.tools import ToolError
    from lab.toolpaths import ToolMissing

    try:
        args.func(args)
    except (StackError, ToolError, ToolMissing, BundleError) as exc:
        raise SystemExit(f"lab {args.command}: {exc}") from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
