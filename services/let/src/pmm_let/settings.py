"""Settings of the let service (environment variables `PMM_*`)."""

from __future__ import annotations

from pydantic import Field

from pmm_contracts.topics import LOKET_CASES
from pmm_runtime.settings import ServiceSettings


class LetSettings(ServiceSettings):
    service_name: str = "let"
    http_port: int = 8003
    deadline_scan_interval_s: float = Field(
        default=3600.0, gt=0, description="how often overdue agreements are looked for"
    )
    cases_topic: str = Field(
        default=LOKET_CASES, description="the Loket's case topic (another name: tests, replays)"
    )
