"""create_app(settings): the one place that wires the overbrugging service."""

from __future__ import annotations

from fastapi import FastAPI

from pmm_overbrugging.settings import OverbruggingSettings
from pmm_runtime.platform import Platform

TITLE = "Overbruggingsprocedure"
DESCRIPTION = "PMM service `overbrugging`."


def create_app(settings: OverbruggingSettings | None = None) -> FastAPI:
    settings = settings or OverbruggingSettings()
    platform = Platform(settings)
    return platform.http_app(title=TITLE, description=DESCRIPTION)
