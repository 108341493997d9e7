"""create_app(settings): the one place that wires the let service."""

from __future__ import annotations

from fastapi import FastAPI

from pmm_let.settings import LetSettings
from pmm_runtime.platform import Platform

TITLE = "Landelijk Escalatie Team"
DESCRIPTION = "PMM service `let`."


def create_app(settings: LetSettings | None = None) -> FastAPI:
    settings = settings or LetSettings()
    platform = Platform(settings)
    return platform.http_app(title=TITLE, description=DESCRIPTION)
