"""The change loop (docs/decisions/0006): one rule for loading, applying, writing, retrying,
auditing and announcing events, against the real store and broker."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pmm_contracts import decode_event, new_event
from pmm_contracts.envelope import CloudEvent, EventData
from pmm_runtime.changes import Aggregates, Changes, diff
from pmm_runtime.errors import Conflict, NotFound, RuleViolation
from pmm_runtime.outbox import PENDING_COLLECTION, AggregateStore, Outgoing, PendingOutbox
from pmm_runtime.platform import dispatch
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.testing import create_topics, eventually, read_topic
from pmm_runtime.writes import LOCK_COLLECTION, Held, Writes, WriteStrategy

from .support import REGISTRY, Counted, platform, watched_client

pytestmark = pytest.mark.integration
SOURCE = "urn:nld:oin:00000001234567890000:systeem:test"


@dataclass
class Counter:
    id: str
    total: int = 0
    tags: list[str] | None = None
    version: int = 0

    def add(self, amount: int) -> list[EventData]:
        if amount <= 0:
            raise RuleViolation("amount", "must be positive")
        self.total += amount
        return [Counted(counter_id=self.id, amount=amount)]


class Counters(Aggregates[Counter]):
    name = "counter"


def counters(app: Any, topic: str) -> Counters:
    return Counters(app.store("counters"), Counter, topic=topic)


async def test_a_change_writes_state_events_and_one_audit_entry_and_reaches_the_topic(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    settings = make_settings(service_name="changes")
    topic = f"test.changes.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic])
    app = platform(settings)
    repo = counters(app, topic)
    await running_platform(app)
    assert await app.changes.create(repo, Counter(id="k1"), [], actor="user:a", action="created")

    done = await app.changes.apply(
        repo, "k1", "cmd-1", lambda c: c.add(5), actor="user:a", action="counter.added", reason="r"
    )
    assert done.changed
    assert done.aggregate.total == 5
    assert done.aggregate.version == 2
    (record,) = await read_topic(settings.kafka_bootstrap, topic, count=1)
    assert record.key == b"k1"
    assert decode_event(record.value, REGISTRY).data == Counted(counter_id="k1", amount=5)

    document = await repo.store.get("k1")
    assert document is not None
    audit = document["_audit"][-1]
    assert audit["actor"] == "user:a"
    assert audit["action"] == "counter.added"
    assert audit["reason"] == "r"
    assert audit["command_id"] == "cmd-1"
    assert audit["old"] == {"total": 0}
    assert audit["new"] == {"total": 5}

    async def announcement_cleared() -> bool:
        return await app.db[PENDING_COLLECTION].count_documents({}) == 0

    assert await eventually(announcement_cleared)


async def test_the_same_command_twice_changes_once_and_a_no_op_writes_nothing(
    make_settings: Callable[..., ServiceSettings], unique: str
) -> None:
    app = platform(make_settings(service_name="changes"))
    repo = counters(app, f"test.changes.{unique}")
    await app.changes.create(repo, Counter(id="k2"), [], actor="a", action="created")
    for _ in range(3):
        await app.changes.apply(repo, "k2", "cmd-same", lambda c: c.add(2), actor="a", action="x")
    again = await app.changes.apply(repo, "k2", None, lambda c: [], actor="a", action="nothing")
    assert not again.changed
    document = await repo.store.get("k2")
    assert document is not None
    assert document["total"] == 2
    assert document["_version"] == 2  # created (1) + one change; the no-op bumps nothing
    assert [a["action"] for a in document["_audit"]] == ["created", "x"]
    assert len(document["_outbox"]) == 1  # no relay runs here: one event waits


def _stale_reads(repo: Counters, stale: Callable[[Held], Awaitable[None]]) -> None:
    """Make each read of the change loop stale in the way ``stale`` says (it changes
    ``held.document`` after the real read, or writes the aggregate behind its back)."""
    real = repo.store.holding

    @contextlib.asynccontextmanager
    async def holding(aggregate_id: str) -> AsyncIterator[Held]:
        async with real(aggregate_id) as held:
            await stale(held)
            yield held

    repo.store.holding = holding  # type: ignore[method-assign]


async def test_a_version_conflict_reruns_the_domain_function_on_the_fresh_state(
    make_settings: Callable[..., ServiceSettings], unique: str
) -> None:
    """With the conditional strategy (MongoDB) the read is not under a lock: another
    writer may win between the read and the write, and the loop starts again."""
    app = platform(make_settings(service_name="changes", store_write_strategy="conditional"))
    repo = counters(app, f"test.changes.{unique}")
    await app.changes.create(repo, Counter(id="k3"), [], actor="a", action="created")
    interfered = False

    async def another_writer_wins(held: Held) -> None:
        nonlocal interfered
        if not interfered:
            interfered = True
            await repo.store.update(held.key, expected_version=None, set_fields={"total": 10})

    _stale_reads(repo, another_writer_wins)
    seen: list[int] = []

    def add_one(counter: Counter) -> list[EventData]:
        seen.append(counter.total)
        return counter.add(1)

    done = await app.changes.apply(repo, "k3", "mine", add_one, actor="a", action="x")
    assert seen == [0, 10]  # the rule ran again on the fresh state
    assert done.aggregate.total == 11
    document = await repo.store.get("k3")
    assert document is not None
    assert document["total"] == 11
    assert document["_version"] == 3


async def test_conflict_after_the_attempts_and_not_found(
    make_settings: Callable[..., ServiceSettings], unique: str
) -> None:
    app = platform(make_settings(service_name="changes", store_write_strategy="conditional"))
    repo = counters(app, f"test.changes.{unique}")
    await app.changes.create(repo, Counter(id="k4"), [], actor="a", action="created")

    async def always_stale(held: Held) -> None:
        assert held.document is not None
        held.document = {**held.document, "_version": 0}  # as if read before a newer write

    real = repo.store.holding
    _stale_reads(repo, always_stale)
    with pytest.raises(Conflict):
        await app.changes.apply(repo, "k4", None, lambda c: c.add(1), actor="a", action="x")
    repo.store.holding = real  # type: ignore[method-assign]
    with pytest.raises(NotFound):
        await app.changes.apply(repo, "nope", None, lambda c: c.add(1), actor="a", action="x")
    with pytest.raises(RuleViolation) as raised:
        await app.changes.apply(repo, "k4", None, lambda c: c.add(0), actor="a", action="x")
    assert raised.value.field == "amount"
    assert await app.db[LOCK_COLLECTION].count_documents({}) == 0


async def test_on_ferretdb_the_change_loop_reads_the_aggregate_once_under_its_lock(
    make_settings: Callable[..., ServiceSettings], unique: str
) -> None:
    """Decision 0013: with the serialized strategy a change is lock, read, write, release
    (and the announcement), with no second read of the aggregate; a domain error inside
    the block releases the lock."""
    settings = make_settings(service_name="changes")
    client, seen = watched_client(settings)
    db = client[settings.database_name]
    writes = Writes(db, holder="me", strategy=WriteStrategy.SERIALIZED)
    store = AggregateStore(db["counters"], PendingOutbox(db[PENDING_COLLECTION], writes), writes)
    repo = Counters(store, Counter, topic=f"test.changes.{unique}")
    changes = Changes(source=SOURCE)
    try:
        await changes.create(repo, Counter(id="k6"), [], actor="a", action="created")
        seen.sent.clear()
        await changes.apply(repo, "k6", "c1", lambda c: c.add(2), actor="a", action="x")
        assert [(name, c) for name, c, _ in seen.sent] == [
            ("insert", LOCK_COLLECTION),
            ("find", "counters"),
            ("findAndModify", "counters"),
            ("insert", PENDING_COLLECTION),  # the announcement, still inside the block
            ("delete", LOCK_COLLECTION),
        ]
        with pytest.raises(RuleViolation):
            await changes.apply(repo, "k6", "c2", lambda c: c.add(0), actor="a", action="x")
        assert await db[LOCK_COLLECTION].count_documents({}) == 0
        document = await store.get("k6")
        assert document is not None
        assert (document["total"], document["_version"]) == (2, 2)
    finally:
        await client.drop_database(settings.database_name)
        await client.close()


async def test_an_unannounced_write_is_found_by_the_start_up_sweep(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    """A crash between the aggregate write and its announcement loses nothing."""
    settings = make_settings(service_name="sweep")
    topic = f"test.sweep.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic])
    app = platform(settings)
    unannounced = AggregateStore(app.db["counters"])  # writes without an announcement
    event = new_event(Counted(counter_id="k5", amount=1), subject="k5", source=settings.source)
    await unannounced.create("k5", {"total": 1}, [Outgoing(topic, event)])
    assert await app.db[PENDING_COLLECTION].count_documents({}) == 0
    app.store("counters")
    await running_platform(app)
    (record,) = await read_topic(settings.kafka_bootstrap, topic, count=1)
    assert record.key == b"k5"


async def test_dispatch_calls_the_handler_of_the_event_type_and_skips_others() -> None:
    class Other(EventData):
        EVENT_TYPE = "nl.maatwerk.test.other"
        x: int

    seen: list[str] = []

    async def on_counted(event: CloudEvent[Any]) -> None:
        seen.append(event.type)

    handle = dispatch({Counted: on_counted})
    await handle(new_event(Counted(counter_id="a", amount=1), subject="a", source=SOURCE))
    await handle(new_event(Other(x=1), subject="a", source=SOURCE))
    assert seen == [Counted.EVENT_TYPE]


def test_diff_names_only_what_changed() -> None:
    old, new = diff({"a": 1, "b": [1, 2], "c": "x"}, {"a": 1, "b": [2, 3], "c": "y"})
    assert old == {"b": [1], "c": "x"}
    assert new == {"b": [3], "c": "y"}
