"""Run a service's ASGI app with uvicorn; SIGTERM drains gracefully within the grace period."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from pmm_runtime.settings import ServiceSettings


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        log_level=settings.log_level.lower(),
        access_log=False,  # the platform's own access log: route templates, no query strings
        log_config=None,  # uvicorn's lines go to the JSON handler (pmm_runtime.logging)
        lifespan="on",
    )
