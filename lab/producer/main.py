"""`lab producer`: the live encoder and the VOD uploader, each in its own thread, with /metrics.

SIGTERM (what `lab down` sends) stops both: ffmpeg is terminated, the current live stream still ends
(its recording becomes VOD) and the Kafka producer is flushed before the process exits.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from lab import metrics
from lab.config import settings

log = logging.getLogger(__name__)
JOIN_TIMEOUT_S = 30.0


def _guarded(name: str, target: Callable[[threading.Event], None], stop: threading.Event) -> threading.Thread:
    """A worker thread whose unexpected death stops the whole producer (visible), not just itself (silent)."""

    def run() -> None:
        try:
            target(stop)
        except Exception:
            log.exception("%s crashed; stopping the producer", name)
            stop.set()

    return threading.Thread(target=run, name=name)


def main(vod: bool = True, live: bool = True) -> None:
    if not (vod or live):
        raise SystemExit("nothing to run: both --no-vod and --no-live were given")
    stop = threading.Event()
    closers: list[Callable[[], None]] = []
    workers: list[threading.Thread] = []
    if live:
        from lab.producer.encoder import LiveEncoder

        encoder = LiveEncoder()
        closers.append(encoder.close)
        workers.append(_guarded("live-encoder", encoder.run, stop))
    if vod:
        from lab.producer.vod import run_vod_uploader  # imported lazily: the live encoder runs without it

        workers.append(_guarded("vod-uploader", run_vod_uploader, stop))

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    metrics.serve(settings.producer_metrics_port, settings.lab_host)
    for worker in workers:
        worker.start()
    log.info("producer running: %s", ", ".join(w.name for w in workers))
    while not stop.wait(1.0):
        if not any(w.is_alive() for w in workers):
            break
    stop.set()
    for close in closers:
        close()
    for worker in workers:
        worker.join(JOIN_TIMEOUT_S)
        if worker.is_alive():
            log.error("%s did not stop within %.0f s", worker.name, JOIN_TIMEOUT_S)
    log.info("producer stopped")
