"""The FastAPI control plane: VOD upload, stream start/end, playback URLs, content catalog, health, metrics.

Clients are created once in the lifespan. Library errors become HTTP errors only here, at the edge.
The key and body checks run before any route, as ASGI middleware (lab.api.edge).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from lab import metrics, storage, topics
from lab.api import content, edge, live, play, vod
from lab.api.health import Health
from lab.config import settings
from lab.live_ingest import reaper as live_reaper

log = logging.getLogger(__name__)
BUCKET_SAMPLE_S = 30   # at least this long between two listings of the buckets
LISTING_SHARE = 0.02   # and long enough that listing takes at most this share of the API's time


async def _sample_buckets() -> None:
    """Bucket sizes for the dashboard: S3 has no size call, so the API lists every object now and then.

    A listing costs in proportion to the objects: boto3 parses each entry's XML, timestamps included (80k live
    chunks: 9.7 s, 6 s of CPU). Listed every 30 s, that kept the API at 12-17 % of a core when idle, growing
    all day. So the pause after a round stretches with the round (pause_after): the gauges are refreshed less
    often as the buckets grow (every ~10 min at 90k objects), and listing never takes more than LISTING_SHARE.
    A failed listing is logged and the bucket's gauges are removed: absent, never an old value shown as now."""
    while True:
        started = time.monotonic()
        for bucket in settings.buckets:
            try:
                count, size = await run_in_threadpool(_bucket_size, bucket)
            except Exception as exc:
                log.warning("bucket sizes: listing %s failed (%s); its gauges are absent until it works",
                            bucket, exc)
                for gauge in (metrics.bucket_objects, metrics.bucket_bytes):
                    with suppress(KeyError):  # never set yet
                        gauge.remove(bucket)
                continue
            metrics.bucket_objects.labels(bucket).set(count)
            metrics.bucket_bytes.labels(bucket).set(size)
        await asyncio.sleep(pause_after(time.monotonic() - started))


def pause_after(listing_s: float) -> float:
    return max(BUCKET_SAMPLE_S, listing_s / LISTING_SHARE)


def _bucket_size(bucket: str) -> tuple[int, int]:
    count = size = 0
    for page in storage.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            count, size = count + 1, size + obj["Size"]
    return count, size


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.producer = topics.producer(**{"client.id": "lab-api"})
    app.state.health = Health()
    app.state.health.start()
    sampler = asyncio.create_task(_sample_buckets())
    reaper, stop_reaper = live_reaper.start(app.state.producer)  # every started stream ends (its docstring)
    yield
    stop_reaper.set()
    sampler.cancel()
    reaper.join(10)
    app.state.health.stop()
    app.state.producer.flush(10)


app = FastAPI(title="Video Streaming Pipeline Lab — control plane", version="1.0", lifespan=lifespan,
              description="Control plane only: live chunks go straight from the encoder to Kafka. "
                          "Write endpoints need the `X-API-Key` header (LAB_API_KEY in .env).")
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET"], allow_headers=["*"])
ROUTERS = [vod.router, live.router, content.router, play.router]
for router in ROUTERS:
    app.include_router(router)
edge.install(app, ROUTERS)


@app.exception_handler(RequestValidationError)
async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A 422 whose `detail` names each bad field in one readable line."""
    lines = [f"body: not valid JSON at character {e['loc'][-1]}" if e["type"] == "json_invalid" else
             f"{'.'.join(str(p) for p in e['loc'] if p not in ('body', 'query', 'path'))}: {e['msg']}"
             for e in exc.errors()]
    return JSONResponse({"detail": "; ".join(lines), "errors": jsonable(exc.errors())}, status_code=422)


NAMES_A_FIELD = re.compile(r"^[\w.-]+: ")


@app.exception_handler(StarletteHTTPException)
async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Our own errors already start with the field they name. Starlette's and FastAPI's body parsers say
    "Invalid multipart data." or "There was an error parsing the body": name the body as the field."""
    if exc.status_code == 400 and isinstance(exc.detail, str) and not NAMES_A_FIELD.match(exc.detail):
        kind = request.headers.get("content-type", "").split(";")[0].strip() or "no Content-Type"
        exc = StarletteHTTPException(400, f"body: {exc.detail.rstrip('.')} ({kind})", exc.headers)
    return await http_exception_handler(request, exc)


def jsonable(errors: list[dict]) -> list[dict]:
    return [{k: (v if isinstance(v, (str, int, float, list, type(None))) else str(v)) for k, v in e.items()}
            for e in errors]


@app.get("/health", tags=["ops"])
async def health(request: Request, verbose: bool = False) -> dict:
    """The API's own dependencies (catalog, S3, Kafka), from probes run in the background every second.
    A dependency is `ok` only if its last probe succeeded less than 5 s ago; `verbose=true` adds each
    probe's age and latency."""
    return request.app.state.health.report(verbose)


@app.get("/metrics", tags=["ops"], include_in_schema=False)
def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
