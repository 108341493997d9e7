"""Every event type of the platform, one module per producing service.

``REGISTRY`` maps a CloudEvents ``type`` to its data model; ``decode_event(raw, REGISTRY)``
turns bytes from any PMM topic into a typed event.
"""

from __future__ import annotations

from pmm_contracts.envelope import EventData
from pmm_contracts.events import bridging, cases, escalations, register, signals

ALL_EVENTS: tuple[type[EventData], ...] = (
    *register.EVENTS,
    *cases.EVENTS,
    *escalations.EVENTS,
    *bridging.EVENTS,
    *signals.EVENTS,
)

REGISTRY: dict[str, type[EventData]] = {model.EVENT_TYPE: model for model in ALL_EVENTS}

if len(REGISTRY) != len(ALL_EVENTS):  # pragma: no cover - caught by the contract tests
    raise RuntimeError("two event models declare the same EVENT_TYPE")

__all__ = ["ALL_EVENTS", "REGISTRY", "bridging", "cases", "escalations", "register", "signals"]
