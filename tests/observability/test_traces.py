"""One HTTP request followed across two services in one trace (issue 16).

The register and the Loket run in-process against the real broker and store, with an
OpenTelemetry SDK whose spans go to an in-memory exporter (the platform uses the global
provider when no OTLP endpoint is configured). An organisation created over the
register's HTTP API must appear as one trace: the register's server span, its store
write (with the outbox entry), the relay's Kafka produce (inside the request's context,
kept in the outbox entry), the Loket's consume (its context from the W3C ``traceparent``
header) and the Loket's store write of its read model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from pmm_contracts.topics import REGISTER_ORGANISATIONS
from pmm_loket.app import create_app as create_loket
from pmm_loket.settings import LoketSettings
from pmm_register.app import create_app as create_register
from pmm_register.settings import RegisterSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.testing import admin_connection, bearer, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

WAIT_S = 200.0  # a new consumer group first replays the shared register topic


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """The process's OpenTelemetry SDK with an in-memory exporter (set once per process:
    OpenTelemetry refuses to replace a global provider)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, SdkTracerProvider):
        provider = SdkTracerProvider()
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield memory
    memory.shutdown()


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def parent_chain(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    """The span and its ancestors, nearest first (as far as they were recorded)."""
    chain = [span]
    while chain[-1].parent is not None and chain[-1].parent.span_id in by_id:
        chain.append(by_id[chain[-1].parent.span_id])
    return chain


async def test_an_http_request_is_one_trace_through_kafka_into_another_service(
    exporter: InMemorySpanExporter,
    make_settings: Callable[..., Any],
    serve: Callable[..., Any],
    issuer: LocalIssuer,
    unique: str,
    infra: Any,
) -> None:
    register_settings = make_settings(RegisterSettings)
    loket_settings = make_settings(LoketSettings)
    register = await serve(create_register(register_settings))
    loket_app = create_loket(loket_settings)
    await serve(loket_app)
    exporter.clear()

    code = f"tr{unique[:8]}"
    created = await register.post(
        "/v1/organisations",
        headers=bearer(issuer, "pmm", "register_admin"),
        json={"code": code, "name": "Tracing", "kind": "municipality", "joined_on": "2024-01-01"},
    )
    assert created.status_code == 201, created.text
    await eventually(lambda: loket_app.state.deps.register.is_member(code), timeout_s=WAIT_S)

    spans = list(exporter.get_finished_spans())
    by_id = {s.context.span_id: s for s in spans}
    servers = [
        s
        for s in spans
        if s.kind == SpanKind.SERVER and attrs(s).get("http.route") == "/v1/organisations"
    ]
    assert len(servers) == 1, [s.name for s in spans if s.kind == SpanKind.SERVER]
    request = servers[0]
    assert attrs(request).get("http.request.method", attrs(request).get("http.method"))
    in_trace = [s for s in spans if s.context.trace_id == request.context.trace_id]

    def kind_of(span: ReadableSpan, kind: SpanKind, name_part: str) -> bool:
        return span.kind == kind and name_part in span.name

    # The register's store write of the aggregate (with its outbox entry), in the request.
    register_db = register_settings.database_name
    writes = [
        s
        for s in in_trace
        if s.kind == SpanKind.CLIENT
        and attrs(s).get("db.name") == register_db
        and attrs(s).get("db.operation") in {"insert", "update", "findAndModify"}
    ]
    assert writes, [s.name for s in in_trace]
    assert all(request in parent_chain(w, by_id) for w in writes)

    # The relay's produce to the register's topic, in the request's context.
    produced = [s for s in in_trace if kind_of(s, SpanKind.PRODUCER, REGISTER_ORGANISATIONS)]
    assert produced, [s.name for s in in_trace]
    assert all(request in parent_chain(p, by_id) for p in produced)

    # The Loket's store write of its read model, inside the Loket's consume, which
    # continued the trace from the traceparent header of the message.
    loket_writes = [
        s
        for s in in_trace
        if s.kind == SpanKind.CLIENT and attrs(s).get("db.name") == loket_settings.database_name
    ]
    assert loket_writes, [s.name for s in in_trace]
    consumes = [
        span
        for write in loket_writes
        for span in parent_chain(write, by_id)
        if kind_of(span, SpanKind.CONSUMER, REGISTER_ORGANISATIONS) and "process" in span.name
    ]
    assert consumes, [[c.name for c in parent_chain(w, by_id)] for w in loket_writes]
    for consume in consumes:
        chain = parent_chain(consume, by_id)
        assert request in chain, [c.name for c in chain]
        assert any(c in produced for c in chain), [c.name for c in chain]

    # No path or query string in a server span: a BSN or a name may be in them.
    exporter.clear()
    asked = await register.get(
        f"/v1/organisations/{code}?bsn=111222333", headers=bearer(issuer, "pmm", "pmm_staff")
    )
    assert asked.status_code < 500, asked.text
    (lookup,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert attrs(lookup)["http.route"] == "/v1/organisations/{code}"
    recorded = " ".join(str(v) for v in attrs(lookup).values())
    assert "111222333" not in recorded
    assert code not in recorded

    # On the wire: the message carries the W3C trace context of this trace.
    consumer = AIOKafkaConsumer(
        REGISTER_ORGANISATIONS,
        **admin_connection(infra.kafka_bootstrap).kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:

        async def traceparent() -> str | None:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.key == code.encode():
                        headers = {k: v.decode() for k, v in record.headers}
                        return headers.get("traceparent")
            return None

        header = await eventually(traceparent, timeout_s=60)
    finally:
        await consumer.stop()
    assert header.split("-")[1] == format(request.context.trace_id, "032x")
