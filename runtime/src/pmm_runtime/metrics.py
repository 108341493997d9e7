"""Prometheus metrics of one service process (a registry per app, no module globals).

Besides the platform's own (``pmm_*``): the process (``process_*``: CPU, memory, open
files), the interpreter (``python_gc_*``, ``python_info``), HTTP per route and status
(``pmm_http_*``, recorded by ``telemetry.RequestObserver``) and FastStream's messaging
metrics (``faststream_*``: received, processed, published, durations, in progress, per
topic; ``KafkaPrometheusMiddleware`` on the broker). A service adds its own on
``registry`` (e.g. overbrugging's budget gauges).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        # prometheus_client's default collectors live on its global registry; this
        # registry gets instances of its own.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
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
        self.http_requests = Counter(
            "pmm_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "pmm_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.info = Gauge(
            "pmm_service_info", "Service identity", ["service"], registry=self.registry
        )
        self.info.labels(service=service).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
