"""The FastAPI control plane: VOD upload, stream start/end, playback URLs, content catalog, health, metrics.

Clients are created once in the lifespan. Library errors become HTTP errors only here, at the edge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lab import catalog, metrics, storage, topics
from lab.api import content, live, play, vod
from lab.config import settings

log = logging.getLogger(__name__)
BUCKET_SAMPLE_S = 30


async def _sample_buckets() -> None:
    """Bucket sizes for the dashboard: S3 has no cheap size call, so the API lists them now and then."""
    while True:
        for bucket in settings.buckets:
            with suppress(Exception):
                sizes = await run_in_threadpool(_bucket_size, bucket)
                metrics.bucket_objects.labels(bucket).set(sizes[0])
                metrics.bucket_bytes.labels(bucket).set(sizes[1])
        await asyncio.sleep(BUCKET_SAMPLE_S)


def _bucket_size(bucket: str) -> tuple[int, int]:
    count = size = 0
    for page in storage.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            count, size = count + 1, size + obj["Size"]
    return count, size


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.producer = topics.producer(**{"client.id": "lab-api"})
    sampler = asyncio.create_task(_sample_buckets())
    yield
    sampler.cancel()
    app.state.producer.flush(10)


app = FastAPI(title="Video Streaming Pipeline Lab — control plane", version="1.0", lifespan=lifespan,
              description="Control plane only: live chunks go straight from the encoder to Kafka. "
                          "Write endpoints need the `X-API-Key` header (LAB_API_KEY in .env).")
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET"], allow_headers=["*"])
for router in (vod.router, live.router, content.router, play.router):
    app.include_router(router)


@app.middleware("http")
async def observe(request: Request, call_next) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")
    metrics.api_requests.labels(request.method, path, str(response.status_code)).inc()
    metrics.api_request_latency.labels(request.method, path).observe(time.perf_counter() - started)
    return response


@app.exception_handler(RequestValidationError)
async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A 422 whose `detail` names each bad field in one readable line."""
    lines = [f"{'.'.join(str(p) for p in e['loc'] if p not in ('body', 'query', 'path'))}: {e['msg']}"
             for e in exc.errors()]
    return JSONResponse({"detail": "; ".join(lines), "errors": jsonable(exc.errors())}, status_code=422)


def jsonable(errors: list[dict]) -> list[dict]:
    return [{k: (v if isinstance(v, (str, int, float, list, type(None))) else str(v)) for k, v in e.items()}
            for e in errors]


@app.get("/health", tags=["ops"])
def health() -> dict:
    """The API's own dependencies: the catalog, S3 and Kafka answer."""
    checks = {}
    for name, probe in (("catalog", lambda: catalog.client().admin.command("ping")),
                        ("s3", lambda: storage.s3().head_bucket(Bucket=settings.bucket_manifests)),
                        ("kafka", lambda: topics.admin(quiet=True).list_topics(timeout=2))):
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # report, don't raise: /health must answer
            checks[name] = f"error: {type(exc).__name__}"
    status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
    return {"status": status, "checks": checks}


@app.get("/metrics", tags=["ops"], include_in_schema=False)
def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
