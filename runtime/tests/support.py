"""A tiny test-only event and platform builder: the runtime knows no domain."""

from __future__ import annotations

from typing import Any

from pmm_contracts.envelope import EventData
from pmm_runtime.platform import Platform
from pmm_runtime.settings import ServiceSettings


class Counted(EventData):
    EVENT_TYPE = "nl.maatwerk.test.counted"

    counter_id: str
    amount: int


REGISTRY: dict[str, type[EventData]] = {Counted.EVENT_TYPE: Counted}


def platform(settings: ServiceSettings, **kwargs: Any) -> Platform:
    return Platform(settings, registry=REGISTRY, configure_logs=False, **kwargs)
