"""create_app(settings): the one place that wires the loket service."""

from __future__ import annotations

from fastapi import FastAPI

from pmm_loket.settings import LoketSettings
from pmm_runtime.platform import Platform

TITLE = "Landelijk Maatwerkloket Multiproblematiek"
DESCRIPTION = "PMM service `loket`."


def create_app(settings: LoketSettings | None = None) -> FastAPI:
    settings = settings or LoketSettings()
    platform = Platform(settings)
    return platform.http_app(title=TITLE, description=DESCRIPTION)
