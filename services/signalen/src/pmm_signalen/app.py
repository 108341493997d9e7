"""create_app(settings): the one place that wires the signalen service."""

from __future__ import annotations

from fastapi import FastAPI

from pmm_runtime.platform import Platform
from pmm_signalen.settings import SignalenSettings

TITLE = "Systeemleren (signalen)"
DESCRIPTION = "PMM service `signalen`."


def create_app(settings: SignalenSettings | None = None) -> FastAPI:
    settings = settings or SignalenSettings()
    platform = Platform(settings)
    return platform.http_app(title=TITLE, description=DESCRIPTION)
