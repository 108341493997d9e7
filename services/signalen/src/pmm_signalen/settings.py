"""Settings of the signalen service (environment variables `PMM_*`)."""

from __future__ import annotations

from pydantic import Field

from pmm_contracts.topics import LOKET_CASES, SIGNALS_RESPONSES_PATTERN
from pmm_runtime.settings import ServiceSettings


class SignalenSettings(ServiceSettings):
    service_name: str = "signalen"
    http_port: int = 8005
    followup_term_days: int = Field(
        default=42, ge=1, description="days an organisation has to answer before it is asked again"
    )
    reminder_scan_interval_s: float = Field(default=3600.0, gt=0)
    figures_interval_s: float = Field(
        default=10.0, gt=0, description="how often pending yearly-figure deltas are applied"
    )
    monitor_window_days: int = Field(default=365, ge=1, description="window of the monitor")
    monitor_threshold: int = Field(
        default=3, ge=2, description="cases with the same bottleneck that make an order-3 candidate"
    )
    cases_topic: str = Field(
        default=LOKET_CASES, description="the Loket's case topic (another name: tests, replays)"
    )
    responses_pattern: str = Field(
        default=SIGNALS_RESPONSES_PATTERN,
        description="regex of the organisations' response topics this service follows",
    )
