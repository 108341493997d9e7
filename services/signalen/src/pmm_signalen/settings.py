"""Settings of the signalen service (environment variables `PMM_*`)."""

from __future__ import annotations

from pmm_runtime.settings import ServiceSettings


class SignalenSettings(ServiceSettings):
    service_name: str = "signalen"
    http_port: int = 8005
