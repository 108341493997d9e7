"""Settings of the let service (environment variables `PMM_*`)."""

from __future__ import annotations

from pmm_runtime.settings import ServiceSettings


class LetSettings(ServiceSettings):
    service_name: str = "let"
    http_port: int = 8003
