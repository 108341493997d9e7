"""The outbox of DESIGN.md §5: no event lost between the store write and the publish."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiokafka.errors import KafkaTimeoutError
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from pmm_contracts import decode_event, new_event
from pmm_contracts.cli import SCHEMA_DIR
from pmm_contracts.events import REGISTRY
from pmm_contracts.events.cases import CaseTriaged
from pmm_runtime.broker import send_fn
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import AggregateStore, OutboxRelay, Outgoing, PendingOutbox
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.testing import create_topics, eventually, read_topic
from pmm_runtime.writes import SweepSchedule, Writes

from .support import REGISTRY as TEST_REGISTRY
from .support import Counted, platform, watched_client

pytestmark = pytest.mark.integration


async def test_event_written_before_a_sigkill_is_published_once_after_restart(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    settings = make_settings(service_name="outbox")
    topic = f"test.outbox.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic])
    script = Path(__file__).with_name("crash_after_write.py")
    crashed = subprocess.run(  # noqa: ASYNC221 - the test waits for the crash on purpose
        [sys.executable, str(script), settings.mongodb_url, settings.database_name, topic, "c9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    event_id = crashed.stdout.strip()

    app = platform(settings)
    store = app.store("counters")
    pending = await store.get("c9")
    assert pending is not None
    assert len(pending["_outbox"]) == 1  # written, not yet published

    await running_platform(app)  # the restarted process relays what was left
    records = await read_topic(settings.kafka_bootstrap, topic, count=1, settle_s=2.0)
    assert len(records) == 1
    assert records[0].key == b"c9"
    assert decode_event(records[0].value, TEST_REGISTRY).id.hex == event_id.replace("-", "")

    async def outbox_cleared() -> bool:
        document = await store.get("c9")
        return document is not None and document["_outbox"] == []

    assert await eventually(outbox_cleared)


async def test_a_published_event_is_valid_cloudevents_json_for_a_plain_kafka_client(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    settings = make_settings(service_name="plain")
    topic = f"test.plain.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic])
    app = platform(settings)
    store = app.store("cases")
    await running_platform(app)
    data = CaseTriaged(case_id="case-1", case_number="LMM-2026-0007", accepted=True)
    event = new_event(data, subject="case-1", source=settings.source)
    await store.create("case-1", {"status": "accepted"}, [Outgoing(topic, event)])
    app.relay.notify()

    (record,) = await read_topic(settings.kafka_bootstrap, topic, count=1)
    headers = dict(record.headers)
    assert headers["content-type"] == b"application/cloudevents+json"
    payload = json.loads(record.value)
    for attribute in ("id", "source", "specversion", "type", "subject", "time", "data"):
        assert attribute in payload
    assert payload["specversion"] == "1.0"
    assert payload["source"] == "urn:nld:oin:00000001234567890000:systeem:plain"
    assert record.key == b"case-1"
    schema = json.loads((SCHEMA_DIR / "nl.maatwerk.case.triaged.json").read_text())
    jsonschema.validate(payload, schema)  # what a non-Python consumer relies on
    assert decode_event(record.value, REGISTRY).data == data


async def test_a_failed_write_makes_the_relay_sweep_for_an_unannounced_aggregate(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    """The store went away between an aggregate's write and its announcement: the write
    that failed makes the next pass sweep, instead of the event waiting for the next
    periodic sweep (ten minutes)."""
    settings = make_settings(service_name="swept")
    topic = f"test.swept.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic])
    app = platform(settings)
    store = app.store("cases")
    await running_platform(app)

    def event(case_id: str) -> Outgoing:
        data = CaseTriaged(case_id=case_id, case_number="LMM-2026-0008", accepted=True)
        return Outgoing(topic, new_event(data, subject=case_id, source=settings.source))

    await store.create("announced", {"status": "accepted"}, [event("announced")])
    app.relay.notify()  # once read, the relay's start-up sweep is behind it
    assert len(await read_topic(settings.kafka_bootstrap, topic, count=1)) == 1

    unannounced = AggregateStore(store.collection, None, app.writes)  # saved, then the crash
    await unannounced.create("unannounced", {"status": "accepted"}, [event("unannounced")])
    app.relay.notify()
    records = await read_topic(settings.kafka_bootstrap, topic, count=2, timeout_s=3.0)
    assert [r.key for r in records] == [b"announced"], "announced without an announcement?"

    away: AsyncMongoClient[Document] = AsyncMongoClient(
        "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300"
    )
    try:
        with pytest.raises(PyMongoError):  # a write of this process meets a missing store
            await app.writes.insert_one(away["pmm"]["cases"], {"_id": "lost"})
    finally:
        await away.close()
    assert app.writes.incidents == 1
    app.relay.notify()
    records = await read_topic(settings.kafka_bootstrap, topic, count=2)
    assert [r.key for r in records] == [b"announced", b"unannounced"]


async def test_a_sweep_is_due_at_first_after_an_incident_and_after_failing() -> None:
    away: AsyncMongoClient[Document] = AsyncMongoClient("mongodb://127.0.0.1:1")
    writes = Writes(away["pmm"], holder="test")
    sweeps = SweepSchedule(writes, interval_s=600.0)
    assert sweeps.due()  # never swept

    async def sweep(fail: bool = False) -> None:
        async with sweeps.sweeping():
            if fail:
                raise RuntimeError("the store went away during the sweep")

    await sweep()
    assert not sweeps.due()
    writes.incidents += 1
    assert sweeps.due()
    with pytest.raises(RuntimeError):
        await sweep(fail=True)
    assert sweeps.due(), "a failed sweep counts as not done"
    await sweep()
    assert not sweeps.due()
    await away.close()


def _counted(settings: ServiceSettings, topic: str, key: str, n: int) -> Outgoing:
    """The ``n``-th test event of ``key``, bound for ``topic``."""
    event = new_event(Counted(counter_id=key, amount=n), subject=key, source=settings.source)
    return Outgoing(topic, event)


class _Refusing:
    """A relay's send that hands over what ``send`` does, but lets the broker refuse the
    events ``refuse(key, amount)`` names (an idempotent producer's expired batch)."""

    def __init__(self, send: Any, refuse: Callable[[bytes | None, int], bool]) -> None:
        self.send = send
        self.refuse = refuse
        self.handed: list[tuple[bytes | None, int]] = []

    async def __call__(
        self, topic: str, key: bytes | None, value: bytes | None, headers: dict[str, str]
    ) -> Awaitable[object]:
        position = json.loads(value or b"{}")["data"]["amount"]
        self.handed.append((key, position))
        if self.refuse(key, position):
            failed: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            failed.set_exception(KafkaTimeoutError("the batch expired"))
            return failed
        result: Awaitable[object] = await self.send(topic, key, value, headers)
        return result


async def test_the_relay_hands_a_page_over_at_once_and_keeps_what_was_not_acknowledged(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    """Many aggregates' events handed to the producer without a wait per event; when the
    broker refuses one, it and every event after it of that aggregate stay in the outbox
    and follow in order at the next pass (an idempotent producer fails every later batch
    of the partition too: modelled here), the others are published and cleared once."""
    settings = make_settings(service_name="pages")
    topic = f"test.pages.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic])
    app = platform(settings)
    await running_platform(app)  # its broker; its own relay knows nothing of "pages"
    collection = app.db["pages"]
    pending = PendingOutbox(app.db["pages_pending"], app.writes)
    store = AggregateStore(collection, pending, app.writes)
    refusing = [True]  # the first pass: a's second event and every later one of a fail
    flaky = _Refusing(
        send_fn(app.broker, app.publishers, app.tombstones),
        lambda key, position: refusing[0] and key == b"a" and position >= 1,
    )
    handed = flaky.handed

    def counted(key: str, n: int) -> Outgoing:
        return _counted(settings, topic, key, n)

    for key in ("a", "b", "c"):
        await store.create(key, {"n": 3}, [counted(key, n) for n in range(3)])
    assert await pending.count() == 3
    relay = OutboxRelay(flaky, [collection], pending=pending, writes=app.writes)
    await relay.sweep()  # what a start-up does (it announces the three again)

    assert await relay.run_once() == 6  # b's and c's three (a's first too, below)
    assert len(handed) == 9, "every event of the page was handed over in one pass"
    a = await store.get("a")
    assert a is not None
    assert [e["value"]["data"]["amount"] for e in a["_outbox"]] == [1, 2]
    assert await pending.count() == 2, "only a's two announcements stay, for the next pass"

    refusing[0] = False
    assert await relay.run_once() == 2
    assert await pending.count() == 0
    records = await read_topic(settings.kafka_bootstrap, topic, count=9, settle_s=2.0)
    by_key: dict[bytes | None, list[int]] = {}
    for record in records:
        by_key.setdefault(record.key, []).append(
            decode_event(record.value, TEST_REGISTRY).data.amount
        )
    assert by_key == {b"a": [0, 1, 2], b"b": [0, 1, 2], b"c": [0, 1, 2]}
    for key in ("a", "b", "c"):
        assert (await store.get(key) or {}).get("_outbox") == []


async def test_the_relay_publishes_an_announced_outbox_without_reading_the_aggregate(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    """An announcement carries the outbox its write left, so the relay publishes it
    without reading the aggregate: two writes, one pass, the newest outbox in order and
    no read. After a publish that failed part-way the aggregate is read again, and an
    entry published from one announcement is not published again from a newer one."""
    settings = make_settings(service_name="snapshots")
    topic = f"test.snapshots.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic])
    app = platform(settings)
    await running_platform(app)
    client, seen = watched_client(settings)
    db = client[settings.database_name]
    writes = Writes(db, holder="snapshots")
    collection = db["snap"]
    pending = PendingOutbox(db["snap_pending"], writes)
    store = AggregateStore(collection, pending, writes)
    refusing = [True]
    flaky = _Refusing(
        send_fn(app.broker, app.publishers, app.tombstones),
        lambda key, position: refusing[0] and key == b"y" and position == 1,
    )

    def counted(key: str, n: int) -> Outgoing:
        return _counted(settings, topic, key, n)

    try:
        relay = OutboxRelay(flaky, [collection], pending=pending, writes=writes)
        assert await relay.run_once() == 0  # its start-up sweep, over nothing yet
        await store.create("x", {"n": 1}, [counted("x", 0), counted("x", 1)])
        assert await store.update("x", expected_version=1, events=[counted("x", 2)])
        seen.sent.clear()
        assert await relay.run_once() == 3
        assert seen.finds("snap") == 0, "published from the announcements"
        assert (await store.get("x") or {}).get("_outbox") == []

        await store.create("y", {"n": 1}, [counted("y", 0), counted("y", 1)])
        with pytest.raises(KafkaTimeoutError):  # y0 published; y1 refused and kept
            await relay.run_once()
        assert [e["value"]["data"]["amount"] for e in (await store.get("y") or {})["_outbox"]] == [
            1
        ]
        refusing[0] = False
        seen.sent.clear()
        assert await relay.run_once() == 1  # y1 only: y is read again
        assert seen.finds("snap") == 1
        assert await pending.count() == 0

        # Two writes whose announcements come in two passes (pages of one): the newer
        # one's outbox still holds the entry the first pass published; it is not sent twice.
        paged = OutboxRelay(flaky, [collection], pending=pending, writes=writes, batch_size=1)
        assert await paged.run_once() == 0  # its start-up sweep, over nothing pending
        await store.create("z", {"n": 1}, [counted("z", 0)])
        assert await store.update("z", expected_version=1, events=[counted("z", 1)])
        assert await paged.run_once() + await paged.run_once() == 2
        assert await pending.count() == 0

        records = await read_topic(settings.kafka_bootstrap, topic, count=7, settle_s=2.0)
        by_key: dict[bytes | None, list[int]] = {}
        for record in records:
            by_key.setdefault(record.key, []).append(
                decode_event(record.value, TEST_REGISTRY).data.amount
            )
        assert by_key == {b"x": [0, 1, 2], b"y": [0, 1], b"z": [0, 1]}
    finally:
        await client.drop_database(settings.database_name)
        await client.close()
