"""Settings of the overbrugging service (environment variables `PMM_*`)."""

from __future__ import annotations

from pydantic import Field

from pmm_contracts.topics import LOKET_CASES
from pmm_runtime.settings import ServiceSettings


class OverbruggingSettings(ServiceSettings):
    service_name: str = "overbrugging"
    http_port: int = 8004
    # How often bookings that a step saved but did not book (a crash between its two
    # writes) are booked by the sweep; a later command on the application books them too.
    pending_bookings_interval_s: float = Field(default=60.0, gt=0)
    budget_metrics_interval_s: float = Field(
        default=30.0, gt=0, description="how often the budget gauges of /metrics are refreshed"
    )
    cases_topic: str = Field(
        default=LOKET_CASES, description="the Loket's case topic (another name: tests, replays)"
    )
