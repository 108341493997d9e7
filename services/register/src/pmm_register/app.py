"""create_app(settings): the one place that wires the register service."""

from __future__ import annotations

from fastapi import FastAPI

from pmm_register.settings import RegisterSettings
from pmm_runtime.platform import Platform

TITLE = "Landelijk Maatwerkregister"
DESCRIPTION = "PMM service `register`."


def create_app(settings: RegisterSettings | None = None) -> FastAPI:
    settings = settings or RegisterSettings()
    platform = Platform(settings)
    return platform.http_app(title=TITLE, description=DESCRIPTION)
