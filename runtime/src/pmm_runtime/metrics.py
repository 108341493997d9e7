"""Prometheus metrics of one service process (a registry per app, no module globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        labels = ["topic"]
        self.consumed = Counter(
            "pmm_events_consumed", "Events handled successfully", labels, registry=self.registry
        )
        self.failed = Counter(
            "pmm_events_failed", "Handler attempts that raised", labels, registry=self.registry
        )
        self.dead_lettered = Counter(
            "pmm_events_dead_lettered", "Messages sent to a DLQ", labels, registry=self.registry
        )
        self.processing = Histogram(
            "pmm_event_processing_seconds",
            "Time to handle an event",
            labels,
            registry=self.registry,
        )
        self.published = Counter(
            "pmm_events_published",
            "Events published by the outbox relay",
            labels,
            registry=self.registry,
        )
        self.outbox_backlog = Gauge(
            "pmm_outbox_backlog", "Events waiting in outboxes", registry=self.registry
        )
        self.consumer_lag = Gauge(
            "pmm_consumer_lag",
            "Messages not yet committed by a consumer group (end offset minus committed)",
            ["group", "topic"],
            registry=self.registry,
        )
        self.info = Gauge(
            "pmm_service_info", "Service identity", ["service"], registry=self.registry
        )
        self.info.labels(service=service).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
