"""The lease of a periodic job (pmm_runtime.lease) against the real store: one holder at a
time, renewal by the holder, takeover after expiry or release."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from pmm_runtime.lease import LEASE_COLLECTION, Lease, instance_id
from pmm_runtime.mongo import Document, create_client
from pmm_runtime.testing import Infra

pytestmark = pytest.mark.integration


class Clock:
    """The holders' wall clock, moved by the test (the store is real, time is not)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def leases(infra: Infra, unique: str) -> AsyncIterator[AsyncCollection[Document]]:
    client = create_client(infra.mongodb_url, app_name="test-lease")
    database = client[f"t_lease_{unique}"]
    try:
        yield database[LEASE_COLLECTION]
    finally:
        await client.drop_database(database.name)
        await client.close()


def lease_for(
    collection: AsyncCollection[Document], holder: str, clock: Clock, ttl_s: float = 60
) -> Lease:
    return Lease(collection, "deadline-scan", holder=holder, ttl_s=ttl_s, clock=clock)


async def test_one_of_two_holders_gets_the_lease(leases: AsyncCollection[Document]) -> None:
    clock = Clock()
    a, b = lease_for(leases, "a", clock), lease_for(leases, "b", clock)

    held = await a.acquire()
    assert held is not None
    assert (held.holder, held.term) == ("a", 1)
    assert held.expires_at == clock.now + timedelta(seconds=60)
    assert await b.acquire() is None
    assert await b.release() is False  # b never held it: nothing changes
    current = await a.current()
    assert current is not None
    assert current.holder == "a"


async def test_the_holder_renews_and_keeps_the_lease(leases: AsyncCollection[Document]) -> None:
    clock = Clock()
    a, b = lease_for(leases, "a", clock), lease_for(leases, "b", clock)
    await a.acquire()

    for _ in range(3):  # a renews every 40 s, within its 60 s: b never gets it
        clock.advance(40)
        renewed = await a.acquire()
        assert renewed is not None
        assert renewed.term == 1  # same holder, same term
        assert renewed.expires_at == clock.now + timedelta(seconds=60)
        assert await b.acquire() is None


async def test_another_holder_takes_over_an_expired_lease(
    leases: AsyncCollection[Document],
) -> None:
    clock = Clock()
    a, b = lease_for(leases, "a", clock), lease_for(leases, "b", clock)
    await a.acquire()

    clock.advance(59)
    assert await b.acquire() is None  # not yet expired
    clock.advance(1)
    taken = await b.acquire()  # a crashed: its lease ran out
    assert taken is not None
    assert (taken.holder, taken.term) == ("b", 2)
    assert await a.acquire() is None  # a came back: b holds it now


async def test_a_released_lease_is_taken_at_once(leases: AsyncCollection[Document]) -> None:
    clock = Clock()
    a, b = lease_for(leases, "a", clock), lease_for(leases, "b", clock)
    await a.acquire()

    assert await a.release() is True  # a graceful shutdown
    taken = await b.acquire()
    assert taken is not None
    assert taken.holder == "b"


async def test_jobs_have_leases_of_their_own(leases: AsyncCollection[Document]) -> None:
    clock = Clock()
    scan = Lease(leases, "deadline-scan", holder="a", ttl_s=60, clock=clock)
    retention = Lease(leases, "retention", holder="b", ttl_s=60, clock=clock)
    assert await scan.acquire() is not None
    assert await retention.acquire() is not None


async def test_concurrent_holders_get_one_lease(leases: AsyncCollection[Document]) -> None:
    """Ten replicas start their round at the same moment: exactly one runs it."""
    holders = [Lease(leases, "figures", holder=instance_id(), ttl_s=30) for _ in range(10)]

    results = await asyncio.gather(*(lease.acquire() for lease in holders))
    winners = [held for held in results if held is not None]
    assert len(winners) == 1
    stored = await holders[0].current()
    assert stored is not None
    assert stored.holder == winners[0].holder


async def test_real_time_expiry(leases: AsyncCollection[Document]) -> None:
    """With the wall clock: two seconds are ample for b's first try on a busy machine."""
    a = Lease(leases, "reminders", holder="a", ttl_s=2.0)
    b = Lease(leases, "reminders", holder="b", ttl_s=2.0)
    held = await a.acquire()
    assert held is not None
    assert await b.acquire() is None
    await asyncio.sleep(2.1)
    taken = await b.acquire()
    assert taken is not None
    assert taken.term == held.term + 1


def test_a_lease_needs_a_time_to_live() -> None:
    with pytest.raises(ValueError, match="positive"):
        Lease(None, "x", holder="a", ttl_s=0)  # type: ignore[arg-type]
