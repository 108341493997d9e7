"""The outbox keeps the trace context of the write that queued an event, and the relay
publishes the event in that trace, however late (issue 16)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

from pmm_contracts import new_event
from pmm_contracts.events.cases import CaseTriaged
from pmm_runtime.outbox import Outgoing
from pmm_runtime.platform import Platform
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.testing import create_topics, eventually, read_topic

pytestmark = pytest.mark.integration


async def test_an_event_is_published_in_the_trace_of_the_write_that_queued_it(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    settings = make_settings(service_name="traced")
    topic = f"test.traced.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic])
    platform = Platform(settings, configure_logs=False)
    platform.publisher(topic, description="test", events=[CaseTriaged])
    store = platform.store("cases")
    tracer = SdkTracerProvider().get_tracer("test")  # the caller's own tracer

    data = CaseTriaged(case_id="case-1", case_number="LMM-2026-0001", accepted=True)
    with tracer.start_as_current_span("the request") as span:
        event = new_event(data, subject="case-1", source=settings.source)
        await store.create("case-1", {"status": "accepted"}, [Outgoing(topic, event)])
    trace_id = format(span.get_span_context().trace_id, "032x")

    stored = await store.get("case-1")
    assert stored is not None
    (entry,) = stored["_outbox"]
    assert entry["trace"]["traceparent"].split("-")[1] == trace_id

    # Published later, by the relay of a process that starts after the request ended.
    await running_platform(platform)
    (record,) = await read_topic(settings.kafka_bootstrap, topic, count=1)
    headers = {name: value.decode() for name, value in record.headers}
    assert headers["traceparent"].split("-")[1] == trace_id

    async def outbox_cleared() -> bool:  # the entry as read, trace context and all
        document = await store.get("case-1")
        return document is not None and document["_outbox"] == []

    assert await eventually(outbox_cleared)


async def test_an_event_written_outside_a_trace_has_no_trace_context(
    make_settings: Callable[..., ServiceSettings],
) -> None:
    settings = make_settings(service_name="untraced")
    platform = Platform(settings, configure_logs=False)
    store = platform.store("cases")
    data = CaseTriaged(case_id="case-2", case_number="LMM-2026-0002", accepted=True)
    event = new_event(data, subject="case-2", source=settings.source)
    await store.create("case-2", {"status": "accepted"}, [Outgoing("test.untraced", event)])
    stored = await store.get("case-2")
    assert stored is not None
    assert "trace" not in stored["_outbox"][0]
    await platform.mongo.close()
