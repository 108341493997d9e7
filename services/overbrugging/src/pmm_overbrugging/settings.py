"""Settings of the overbrugging service (environment variables `PMM_*`)."""

from __future__ import annotations

from pmm_runtime.settings import ServiceSettings


class OverbruggingSettings(ServiceSettings):
    service_name: str = "overbrugging"
    http_port: int = 8004
