"""`lab bench live --find-knee` and `--with-vod`: the live bench's runs in series.

--find-knee: N streams, the per-stream rate doubled each step, until every engine is past its knee: it fell
behind (sustained < 90 % of offered, or chunks still missing after the drain) or its p99 passed 2 s. Each
engine's knee is the highest offered rate it kept up with; what bounds it is read from its stage times and
from the publisher (which shares the cores: when it cannot publish the offered rate, the knee is not
measurable on this machine, and the bench says so).

--with-vod: a quiet run, then the same run while a VOD upload loop keeps the transcoder busy; p99 beside p99.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import httpx

from lab.bench.live import EngineResult, RunResult, _out, measure, percentiles, report
from lab.bench.live_engines import Engine
from lab.producer.replay import Replay, sample_segments

log = logging.getLogger(__name__)

P99_LIMIT_MS = 2000.0
KEPT_UP = 0.9
MAX_STEPS = 8


def kept_up(result: RunResult, engine: EngineResult) -> bool:
    p99 = percentiles(engine.player_ms).get(99, float("inf"))
    return (engine.seen == result.published and engine.sustained >= KEPT_UP * result.offered
            and p99 <= P99_LIMIT_MS)


def bound(engine: EngineResult) -> str:
    if not engine.stages:
        return "stage times: see the whole-bench lines below"
    stage, mean_ms, _ = max(engine.stages, key=lambda s: s[1] * s[2])
    return f"most time in stage '{stage}' (mean {mean_ms:.0f} ms)"


def find_knee(engines: list[Engine], streams: int, duration: float) -> None:
    replay = Replay(sample_segments())
    knees: dict[str, float] = {}
    rate = 0.5
    rows: list[tuple[RunResult, list[bool]]] = []
    for _ in range(MAX_STEPS):
        result = measure(engines, streams, rate, duration, replay)
        report(result)
        ok = [kept_up(result, e) for e in result.engines]
        rows.append((result, ok))
        for engine, good in zip(result.engines, ok, strict=True):
            if good:
                knees[engine.label] = max(knees.get(engine.label, 0.0), result.offered)
        published_rate = result.published / result.duration
        if published_rate < KEPT_UP * result.offered:
            _out(f"the publisher itself reached only {published_rate:.0f} of {result.offered:g} chunks/s on this "
                 f"machine (S3 PUTs and Kafka on the same cores): no higher rate can be offered")
            break
        if not any(ok):
            break
        rate *= 2
    _out("")
    _out(f"knee table ({streams} streams; a step is kept up with when every chunk arrived, sustained >= "
         f"{KEPT_UP:.0%} of offered and p99 <= {P99_LIMIT_MS:.0f} ms)")
    labels = [e.label for e in rows[0][0].engines]
    _out(f"  {'offered/s':>9} {'load':>5}  " + "  ".join(f"{label[:22]:>22}" for label in labels))
    for result, ok in rows:
        cells = [f"{percentiles(e.player_ms).get(99, 0):6.0f} ms {e.sustained:6.1f}/s {'ok' if good else '--':>2}"
                 for e, good in zip(result.engines, ok, strict=True)]
        _out(f"  {result.offered:>9g} {result.load[1]:>5.2f}  " + "  ".join(f"{c:>22}" for c in cells))
    last = rows[-1][0]
    for engine in last.engines:
        knee = knees.get(engine.label)
        _out(f"  knee {engine.label}: " + (f"{knee:g} chunks/s sustained" if knee else "below the first step")
             + f"; {bound(engine)}")


class VodLoop:
    """Uploads a sample clip through the API and waits for it to finish, again and again, until stopped."""

    def __init__(self) -> None:
        self.finished = 0
        self.transcoding = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-vod-loop", daemon=True)

    def __enter__(self) -> VodLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=600)

    def _run(self) -> None:
        from lab.producer.clips import sample_clips
        from lab.producer.upload import api_client, get_json, upload_file

        clips = sample_clips()
        with api_client() as client:
            number = 0
            while not self._stop.is_set():
                number += 1
                try:
                    answer = upload_file(client, clips[number % len(clips)], f"bench vod loop {number}")
                except Exception:  # the API refused or went away: say so, try again shortly
                    log.exception("bench VOD loop: upload failed")
                    self._stop.wait(2)
                    continue
                self._follow(client, get_json, answer["stream_id"])

    def _follow(self, client: httpx.Client, get_json, stream_id: str) -> None:
        while not self._stop.wait(0.5):
            _, doc = get_json(client, f"/vod/{stream_id}/metadata")
            status = doc.get("status")
            if status == "transcoding":
                self.transcoding.set()
            if status in ("ready", "failed"):
                self.finished += 1
                return


def quiet_and_with_vod(engines: list[Engine], streams: int, rate: float, duration: float) -> None:
    replay = Replay(sample_segments())
    _out("quiet run:")
    quiet = measure(engines, streams, rate, duration, replay)
    report(quiet)
    _out("with a VOD upload loop (each upload transcoded to its ladder before the next):")
    with VodLoop() as vod:
        if not vod.transcoding.wait(120):
            _out("  the VOD loop's first upload did not reach `transcoding` within 120 s: measuring anyway")
        busy = measure(engines, streams, rate, duration, replay)
        report(busy)
    _out(f"  VOD uploads finished during the run: {vod.finished}")
    _compare(quiet.engines, busy.engines)


def _compare(quiet: Sequence[EngineResult], busy: Sequence[EngineResult]) -> None:
    for q, b in zip(quiet, busy, strict=True):
        qp, bp = percentiles(q.player_ms), percentiles(b.player_ms)
        if qp and bp:
            _out(f"  {q.label}: p99 quiet {qp[99]:.0f} ms, with VOD {bp[99]:.0f} ms "
                 f"({bp[99] / max(qp[99], 1):.2f}x; goal <= 2x)")
