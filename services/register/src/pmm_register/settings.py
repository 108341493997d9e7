"""Settings of the register service (environment variables ``PMM_*``)."""

from __future__ import annotations

from pydantic import Field

from pmm_runtime.settings import ServiceSettings


class RegisterSettings(ServiceSettings):
    service_name: str = "register"
    http_port: int = 8001
    stale_after_months: int = Field(default=12, ge=1, description="verification term")
    stale_scan_interval_s: float = Field(default=3600.0, gt=0)
