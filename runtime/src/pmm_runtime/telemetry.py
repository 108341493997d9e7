"""Traces and the HTTP access log of one service process (OpenTelemetry, W3C trace context).

One trace follows a request through the platform:

- HTTP: the FastAPI instrumentation opens a server span per request (probes and
  ``/metrics`` excluded) and continues a ``traceparent`` the caller sent;
- store: every MongoDB command issued while a span is current is a client span
  (``MongoSpans``; command names and collections only, never documents);
- outbox: an event written in a span keeps that span's ``traceparent`` in its outbox entry
  (``outbox.Outgoing.entry``), and the relay publishes it inside that context, so the
  producer span is a child of the request that caused the event, however late it is sent;
- Kafka: FastStream's ``KafkaTelemetryMiddleware`` writes ``traceparent`` into the message
  headers when producing and opens the consumer span from them when consuming (for a
  batch, one span linked to its records, and ``Telemetry.consuming`` a span per record
  from its own header); the handler's store writes and outbox entries continue that trace.

Export: with ``otel_exporter_otlp_endpoint`` set, a tracer provider of this process sends
spans in batches over OTLP/HTTP. Unset, the platform uses OpenTelemetry's global provider:
a no-op (nothing recorded, nothing sent) unless the process installed an SDK itself, as the
tests do with an in-memory exporter or as the ``opentelemetry-instrument`` agent does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from importlib import metadata
from typing import Any

from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pymongo import monitoring
from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pmm_runtime.logging import get_logger
from pmm_runtime.metrics import Metrics
from pmm_runtime.settings import ServiceSettings

log = get_logger(__name__)

QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and scrapes: no span, and their access log lines at DEBUG."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_PROPAGATOR = TraceContextTextMapPropagator()
_UNTRACED_COMMANDS = frozenset(
    {"hello", "ismaster", "isMaster", "ping", "endSessions", "saslStart", "saslContinue"}
)


def current_trace_context() -> dict[str, str]:
    """The W3C ``traceparent`` (and ``tracestate``) of the current span; empty without one."""
    carrier: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        _PROPAGATOR.inject(carrier)
    return carrier


def context_from(carrier: Mapping[str, str] | None) -> Context:
    """The context a stored ``traceparent`` names (an empty context without one)."""
    return _PROPAGATOR.extract(dict(carrier or {}), context=Context())


class use_trace_context:  # noqa: N801 - used like a function: ``with use_trace_context(...)``
    """Make a stored trace context current for a block (the outbox relay's publish)."""

    def __init__(self, carrier: Mapping[str, str] | None) -> None:
        self._carrier = carrier
        self._token: object | None = None

    def __enter__(self) -> None:
        if self._carrier:
            self._token = otel_context.attach(context_from(self._carrier))

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None


class Telemetry:
    """The tracer provider of one process and the instrumentation that uses it."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._owned: SdkTracerProvider | None = None
        endpoint = settings.otel_exporter_otlp_endpoint
        if endpoint is not None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            from pmm_runtime.lease import instance_id

            resource = Resource.create(
                {
                    "service.name": f"pmm-{settings.service_name}",
                    "service.namespace": "pmm",
                    "service.version": _version(f"pmm-{settings.service_name}"),
                    "service.instance.id": instance_id(),
                }
            )
            provider = SdkTracerProvider(
                resource=resource,
                sampler=ParentBased(TraceIdRatioBased(settings.otel_sample_ratio)),
            )
            traces_url = str(endpoint).rstrip("/") + "/v1/traces"
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
            self._owned = provider
            self.provider: TracerProvider = provider
        else:
            self.provider = trace.get_tracer_provider()
        self.tracer = self.provider.get_tracer("pmm_runtime")
        self.exporting = endpoint is not None

    def broker_middleware(self) -> KafkaTelemetryMiddleware:
        """Producer and consumer spans, ``traceparent`` in the Kafka headers."""
        return KafkaTelemetryMiddleware(tracer_provider=self.provider)

    @contextlib.contextmanager
    def consuming(
        self, topic: str, headers: Sequence[tuple[str, bytes | None]] | None
    ) -> Iterator[None]:
        """A consumer span for one record of a batch, continuing the trace its
        ``traceparent`` header carries. (For a batch, FastStream's middleware opens one span
        for the whole batch, linked to its records: a record's handling would otherwise
        not be in the trace that caused it.)"""
        carrier = {
            name: value.decode(errors="replace")
            for name, value in headers or ()
            if value is not None and name in ("traceparent", "tracestate")
        }
        with self.tracer.start_as_current_span(
            f"{topic} process",
            context=context_from(carrier),
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
        ):
            yield

    def mongo_listener(self) -> MongoSpans:
        return MongoSpans(self.tracer)

    def instrument(self, app: Any) -> None:
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=",".join(sorted(QUIET_PATHS)),
            exclude_spans=["receive", "send"],
        )

    def shutdown(self) -> None:
        """Send what is buffered (at the end of the graceful stop)."""
        if self._owned is not None:
            self._owned.shutdown()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


class MongoSpans(monitoring.CommandListener):
    """A client span per MongoDB command issued inside a trace (none outside one: the
    relay's and the lease's polling would be noise). Names and collections only."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._spans: dict[tuple[int, Any], trace.Span] = {}

    @staticmethod
    def _key(event: Any) -> tuple[int, Any]:
        return (event.request_id, event.connection_id)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in _UNTRACED_COMMANDS:
            return
        if not trace.get_current_span().get_span_context().is_valid:
            return
        collection = event.command.get(event.command_name)
        attributes: dict[str, str] = {
            "db.system": "mongodb",
            "db.name": event.database_name,
            "db.operation": event.command_name,
        }
        target = event.database_name
        if isinstance(collection, str):
            attributes["db.mongodb.collection"] = collection
            target = f"{event.database_name}.{collection}"
        span = self._tracer.start_span(
            f"{event.command_name} {target}", kind=SpanKind.CLIENT, attributes=attributes
        )
        self._spans[self._key(event)] = span

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        span = self._spans.pop(self._key(event), None)
        if span is not None:
            span.end()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        span = self._spans.pop(self._key(event), None)
        if span is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(event.failure).__name__))
            span.end()


def route_template(scope: Mapping[str, Any]) -> str:
    """The path template of the route that answered (``/v1/cases/{case_id}``), or
    ``unmatched``. FastAPI keeps the included router's own route in ``scope["route"]``
    (without the ``/v1`` prefix) and the full template in its effective route context."""
    effective = (scope.get("fastapi") or {}).get("effective_route_context")
    path = getattr(effective, "path", None)
    if isinstance(path, str) and path:
        return path
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    # The app's own Starlette routes (/openapi.json, /docs-assets/...) leave no trace in
    # the scope: match them again (only these, only when nothing else named the route).
    for candidate in getattr(scope.get("app"), "routes", ()):
        if isinstance(candidate, Route | Mount):
            match, _ = candidate.matches(dict(scope))
            if match == Match.FULL:
                return candidate.path_format
    return "unmatched"


def _redact_server_span(scope: Mapping[str, Any], route: str) -> None:
    """The server span names the route template, not the path and query string the
    instrumentation recorded (a BSN or a name may be in them)."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    headers = dict(scope.get("headers") or ())
    host = headers.get(b"host", b"").decode("latin-1") or "unknown"
    span.set_attribute("http.target", route)
    span.set_attribute("http.url", f"{scope.get('scheme', 'http')}://{host}{route}")
    recorded = getattr(span, "attributes", None) or {}
    if "url.path" in recorded:
        span.set_attribute("url.path", route)
    if "url.query" in recorded:
        span.set_attribute("url.query", "")
    if "url.full" in recorded:
        span.set_attribute("url.full", f"{scope.get('scheme', 'http')}://{host}{route}")


class RequestObserver:
    """ASGI middleware: HTTP metrics per route, status and duration, and one access log
    line per request (method, route template, status, duration). The route is the
    template (``/v1/cases/{case_id}``), never the path or the query string, which may
    carry personal data; unmatched paths count as ``unmatched``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                # before the body: the instrumentation ends the span with the last chunk
                _redact_server_span(scope, route_template(scope))
            await send(message)

        try:
            await self.app(scope, receive, observe_send)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: MutableMapping[str, Any], status: int, duration_s: float) -> None:
        method = scope.get("method", "GET")
        method = method if method in METHODS else "OTHER"
        route = route_template(scope)
        self.metrics.http_requests.labels(method=method, route=route, status=str(status)).inc()
        self.metrics.http_duration.labels(method=method, route=route).observe(duration_s)
        line = log.debug if route in QUIET_PATHS else log.info
        line(
            "http request",
            method=method,
            route=route,
            status=status,
            duration_ms=round(duration_s * 1000, 1),
        )
