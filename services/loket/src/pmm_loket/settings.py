"""Settings of the Loket service (environment variables ``PMM_*``)."""

from __future__ import annotations

from pydantic import Field

from pmm_runtime.settings import ServiceSettings


class LoketSettings(ServiceSettings):
    service_name: str = "loket"
    http_port: int = 8002
    intake_working_days: int = Field(default=5, ge=1, description="triage deadline")
    consultation_working_days: int = Field(default=5, ge=1)
    case_weeks: int = Field(default=8, ge=1, description="target duration of a case")
    deadline_warning_days: int = Field(default=2, ge=0)
    deadline_scan_interval_s: float = Field(default=3600.0, gt=0)
    retention_days: int = Field(
        default=730, ge=1, description="closed cases are anonymised this many days later"
    )
    retention_scan_interval_s: float = Field(default=86_400.0, gt=0)
