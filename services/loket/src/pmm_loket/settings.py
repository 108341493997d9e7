"""Settings of the loket service (environment variables `PMM_*`)."""

from __future__ import annotations

from pmm_runtime.settings import ServiceSettings


class LoketSettings(ServiceSettings):
    service_name: str = "loket"
    http_port: int = 8002
