"""Settings of the register service (environment variables `PMM_*`)."""

from __future__ import annotations

from pmm_runtime.settings import ServiceSettings


class RegisterSettings(ServiceSettings):
    service_name: str = "register"
    http_port: int = 8001
