"""A bench-only Spark application running one Spark live design into a namespace of its own, beside spark-live.

    python -m lab.bench.live_app --prefix bench-executors-abc123 [--engine executors|statestore]

Starts at the topic's end with a fresh checkpoint, says `ready` once its first (empty) batch has run (so its
offsets are fixed before the bench publishes), and on SIGTERM stops and prints its stage times.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import signal
import sys
import threading

from lab.streaming.live_io import stage_report
from lab.streaming.live_task import Outputs

DESIGNS = ("executors", "statestore")  # the driver engine writes only the lab's own outputs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--engine", choices=DESIGNS, default="executors")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from lab.streaming import live, session

    outputs = Outputs(args.prefix)
    name = f"{live.QUERY}-{args.prefix}"
    spark = session.build(f"lab-bench-{args.prefix}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    query = live.start(spark, engine=args.engine, outputs=outputs, starting_offsets="latest")
    try:
        while query.lastProgress is None and query.isActive and not stop.wait(0.2):
            pass
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        while query.isActive and not stop.wait(0.5):
            pass
    finally:
        # the bench signals the whole process group: the JVM got the SIGTERM too, and its shutdown hook may
        # have stopped the SparkContext already (seen under load); the stage times are this process's own
        with contextlib.suppress(Exception):
            query.stop()
            spark.stop()
        shutil.rmtree(live.checkpoint_dir(name, args.engine), ignore_errors=True)
    sys.stdout.write(stage_report() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
