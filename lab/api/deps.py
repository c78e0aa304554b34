"""Dependencies shared by the routers: the API key check and the clients created once in the lifespan."""

from __future__ import annotations

import hmac
from typing import Annotated

from confluent_kafka import Producer
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from lab.config import settings

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="LAB_API_KEY from .env")


def require_api_key(key: Annotated[str | None, Security(_api_key)]) -> None:
    """Write endpoints need the key; reads are open (playback itself is protected by signed URLs).

    The edge (`lab.api.edge.Guard`) checks the same key before the body is read; this dependency marks the
    routes that need it (the guard finds them by it) and documents the header in the OpenAPI schema.
    Compared as bytes: `hmac.compare_digest` raises TypeError on a str with non-ASCII characters, and
    Starlette decodes header bytes as latin-1, so encoding back gives the bytes the client sent."""
    if key is None:
        raise HTTPException(401, "X-API-Key: header missing")
    if not hmac.compare_digest(key.encode("latin-1"), settings.lab_api_key.encode()):
        raise HTTPException(403, "X-API-Key: not a valid key")


def _producer(request: Request) -> Producer:
    return request.app.state.producer


ApiKey = Depends(require_api_key)
ProducerDep = Annotated[Producer, Depends(_producer)]
