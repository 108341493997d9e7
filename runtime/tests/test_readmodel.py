"""The register read model's queries by key read one document by bare ``_id``, on the real
store (FerretDB 1.24 decodes every document for any other filter: decision 0008), and its
role index answers ``with_role`` exactly, whatever order the changelog's messages come in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from pmm_contracts.envelope import new_event
from pmm_contracts.events.register import ProfessionalState
from pmm_contracts.vocabulary import Role
from pmm_runtime.mongo import Document
from pmm_runtime.platform import Platform
from pmm_runtime.readmodel import RegisterReadModel
from pmm_runtime.settings import ServiceSettings

from .support import platform

pytestmark = pytest.mark.integration

SOURCE = "urn:nld:oin:00000001234567890000:systeem:register"
EXECUTIVE, AMBASSADOR = Role.EXECUTIVE, Role.AMBASSADOR


class Filters(monitoring.CommandListener):
    def __init__(self) -> None:
        self.finds: list[dict[str, Any]] = []

    def started(self, event: Any) -> None:
        if event.command_name == "find":
            self.finds.append(dict(event.command.get("filter") or {}))

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


@pytest.fixture(params=["serialized", "conditional"])
async def built(
    make_settings: Callable[..., ServiceSettings], request: pytest.FixtureRequest
) -> AsyncIterator[Platform]:
    """A platform of its own database (not started: the tests call the handlers), writing
    as on FerretDB (serialized) and as on MongoDB (the condition in the filter)."""
    built = platform(make_settings(service_name="readmodel", store_write_strategy=request.param))
    try:
        yield built
    finally:
        await built.mongo.drop_database(built.db.name)
        await built.mongo.close()


def state(pid: str, organisation: str, roles: tuple[Role, ...], version: int) -> Any:
    data = ProfessionalState(
        id=pid,
        organisation=organisation,
        name=pid,
        email="someone@example.nl",
        roles=roles,
        last_verified_on=date(2026, 1, 1),
        version=version,
    )
    return new_event(data, subject=pid, source=SOURCE)


def stored_the_old_way(pid: str, organisation: str, roles: tuple[Role, ...]) -> Document:
    """A professional as a read model without the role index stored it."""
    data = state(pid, organisation, roles, 1).data
    return {"_id": pid, **data.model_dump(mode="json")}


async def holders(model: RegisterReadModel, role: Role, organisation: str) -> list[str]:
    return [p["_id"] for p in await model.with_role(role.value, organisation)]


async def listed(model: RegisterReadModel, role: Role, organisation: str) -> dict[str, int]:
    """The role index's entries of the pair (stale ones included)."""
    index = await model.roles.find_one({"_id": f"{organisation}/{role.value}"})
    return dict((index or {}).get("professionals") or {})


async def test_membership_is_read_by_bare_id(built: Platform) -> None:
    model = RegisterReadModel(built)
    filters = Filters()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        built.settings.mongodb_url, tz_aware=True, event_listeners=[filters]
    )
    model.organisations = client[built.db.name]["register_organisations"]
    try:
        await model.organisations.insert_many(
            [
                {"_id": "member", "is_member": True, "version": 1},
                {"_id": "left", "is_member": False, "version": 2},
            ]
        )
        filters.finds.clear()
        answers = [await model.is_member(code) for code in ("member", "left", "unknown")]
        assert answers == [True, False, False]
        assert filters.finds == [{"_id": "member"}, {"_id": "left"}, {"_id": "unknown"}]
    finally:
        await client.close()


async def test_with_role_follows_changes_moves_redeliveries_older_versions_and_tombstones(
    built: Platform,
) -> None:
    model = RegisterReadModel(built)
    await model._indexes()
    p1, p2, p3 = (
        state("p1", "uwv", (EXECUTIVE,), 1),
        state("p2", "uwv", (EXECUTIVE, AMBASSADOR), 1),
        state("p3", "duo", (EXECUTIVE,), 1),
    )
    for event in (p1, p2, p3):
        await model._on_professional(event)
    assert await holders(model, EXECUTIVE, "uwv") == ["p1", "p2"]
    assert await holders(model, AMBASSADOR, "uwv") == ["p2"]
    assert await holders(model, EXECUTIVE, "duo") == ["p3"]
    assert await holders(model, AMBASSADOR, "duo") == []

    # A role change: listed under the new pair, out of the old one.
    await model._on_professional(state("p1", "uwv", (AMBASSADOR,), 2))
    assert await holders(model, EXECUTIVE, "uwv") == ["p2"]
    assert await holders(model, AMBASSADOR, "uwv") == ["p1", "p2"]
    # The older state comes again (a rebalance): it changes and lists nothing.
    await model._on_professional(p1)
    assert await holders(model, EXECUTIVE, "uwv") == ["p2"]
    assert await listed(model, EXECUTIVE, "uwv") == {"p2": 1}

    # A move to another organisation, then its redelivery.
    for _ in range(2):
        await model._on_professional(state("p2", "duo", (EXECUTIVE,), 2))
        assert await holders(model, EXECUTIVE, "uwv") == []
        assert await holders(model, AMBASSADOR, "uwv") == ["p1"]
        assert await holders(model, EXECUTIVE, "duo") == ["p2", "p3"]
    assert await listed(model, EXECUTIVE, "uwv") == {}
    assert await listed(model, AMBASSADOR, "uwv") == {"p1": 2}

    # A tombstone (twice: redelivered), then the same id registered again.
    for _ in range(2):
        await model._remove_professional("p3")
        assert await holders(model, EXECUTIVE, "duo") == ["p2"]
        assert await model.professional("p3") is None
    assert await listed(model, EXECUTIVE, "duo") == {"p2": 2}
    await model._on_professional(state("p3", "duo", (EXECUTIVE,), 1))
    assert await holders(model, EXECUTIVE, "duo") == ["p2", "p3"]

    # An id that is no plain field name.
    await model._on_professional(state("p.4$x%2E", "duo", (EXECUTIVE,), 1))
    assert await holders(model, EXECUTIVE, "duo") == ["p.4$x%2E", "p2", "p3"]
    await model._remove_professional("p.4$x%2E")
    assert await holders(model, EXECUTIVE, "duo") == ["p2", "p3"]


async def test_an_older_state_unlisting_late_never_takes_out_a_newer_one(
    built: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two consumers of one key during a rebalance: one writes version 2 (no longer an
    executive) and is slow to unlist; meanwhile the other writes version 3 (an executive
    again). The late unlisting of version 2 must leave version 3's entry."""
    model = RegisterReadModel(built)
    await model._indexes()
    await model._on_professional(state("p1", "uwv", (EXECUTIVE,), 1))

    unlist = model._unlist
    reached, go = asyncio.Event(), asyncio.Event()

    async def late(*args: Any) -> None:
        if not reached.is_set():
            reached.set()
            await go.wait()
        await unlist(*args)

    monkeypatch.setattr(model, "_unlist", late)
    slow = asyncio.create_task(model._on_professional(state("p1", "uwv", (AMBASSADOR,), 2)))
    await asyncio.wait_for(reached.wait(), 10)
    assert await holders(model, EXECUTIVE, "uwv") == []  # version 2 is written
    await model._on_professional(state("p1", "uwv", (EXECUTIVE,), 3))
    go.set()
    await slow
    assert await holders(model, EXECUTIVE, "uwv") == ["p1"]
    assert await listed(model, EXECUTIVE, "uwv") == {"p1": 3}
    # Version 3 read version 2 as the state it replaced: it unlisted its ambassador entry.
    assert await holders(model, AMBASSADOR, "uwv") == []
    assert await listed(model, AMBASSADOR, "uwv") == {}


async def test_with_role_sends_only_finds_by_bare_id(built: Platform) -> None:
    model = RegisterReadModel(built)
    await model._indexes()
    for n in range(20):
        await model._on_professional(state(f"other-{n:02}", "duo", (EXECUTIVE,), 1))
    await model._on_professional(state("p1", "uwv", (EXECUTIVE,), 1))
    await model._on_professional(state("p2", "uwv", (EXECUTIVE, AMBASSADOR), 1))
    await model._on_professional(state("p3", "uwv", (AMBASSADOR,), 1))
    await model._on_professional(state("p3", "uwv", (EXECUTIVE,), 2))
    await model._on_professional(state("p3", "uwv", (AMBASSADOR,), 3))

    filters = Filters()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        built.settings.mongodb_url, tz_aware=True, event_listeners=[filters]
    )
    model.roles = client[built.db.name][model.roles.name]
    model.professionals = client[built.db.name][model.professionals.name]
    try:
        executives = await model.with_role(EXECUTIVE.value, "uwv")
        assert [p["_id"] for p in executives] == ["p1", "p2"]
        assert executives[0]["email"] == "someone@example.nl"  # the whole document
        assert filters.finds == [{"_id": "uwv/executive"}, {"_id": "p1"}, {"_id": "p2"}]
        filters.finds.clear()
        assert await model.with_role(EXECUTIVE.value, "nobody") == []
        assert filters.finds == [{"_id": "nobody/executive"}]
        filters.finds.clear()
        async for first in model.each_with_role(EXECUTIVE.value, "uwv"):
            assert first["_id"] == "p1"
            break  # the Loket's consultee: only the ones looked at are read
        assert filters.finds == [{"_id": "uwv/executive"}, {"_id": "p1"}]
    finally:
        await client.close()


async def test_start_up_lists_the_professionals_stored_before_the_role_index(
    built: Platform,
) -> None:
    old = RegisterReadModel(built)
    await old.professionals.insert_many(
        [
            stored_the_old_way("p1", "uwv", (EXECUTIVE,)),
            stored_the_old_way("p2", "uwv", (EXECUTIVE, AMBASSADOR)),
            stored_the_old_way("p3", "duo", (AMBASSADOR,)),
        ]
    )
    model = RegisterReadModel(built)
    await model._indexes()  # the start-up hook
    assert await holders(model, EXECUTIVE, "uwv") == ["p1", "p2"]
    assert await holders(model, AMBASSADOR, "uwv") == ["p2"]
    assert await holders(model, AMBASSADOR, "duo") == ["p3"]
    marker = await model.migrations.find_one({"_id": "register_roles"})
    assert marker is not None
    assert marker["professionals"] == 3
    # Redelivered (a consumer group replaying): nothing changes, nothing is missing.
    await model._on_professional(state("p1", "uwv", (EXECUTIVE,), 1))
    assert await holders(model, EXECUTIVE, "uwv") == ["p1", "p2"]
    # Maintained from here on.
    await model._on_professional(state("p1", "uwv", (AMBASSADOR,), 2))
    assert await holders(model, EXECUTIVE, "uwv") == ["p2"]
    assert await holders(model, AMBASSADOR, "uwv") == ["p1", "p2"]

    # The next start reads the marker only: no scan.
    filters = Filters()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        built.settings.mongodb_url, tz_aware=True, event_listeners=[filters]
    )
    try:
        again = RegisterReadModel(built)
        again.migrations = client[built.db.name][model.migrations.name]
        again.professionals = client[built.db.name][model.professionals.name]
        await again._indexes()
        assert filters.finds == [{"_id": "register_roles"}]
    finally:
        await client.close()


async def test_a_model_not_started_builds_the_role_index_at_its_first_query(
    built: Platform,
) -> None:
    """Tools and tests that fill the professionals collection themselves, without start-up."""
    model = RegisterReadModel(built)
    await model.professionals.insert_one(stored_the_old_way("p1", "uwv", (EXECUTIVE,)))
    assert await holders(model, EXECUTIVE, "uwv") == ["p1"]
    assert await model.migrations.find_one({"_id": "register_roles"}) is not None


async def test_a_redelivered_state_lists_a_professional_the_index_missed(
    built: Platform,
) -> None:
    """A professional written without being listed after the build (a previous version
    consuming next to this one): the redelivery of its stored state lists it."""
    model = RegisterReadModel(built)
    await model._indexes()
    await model.professionals.insert_one(stored_the_old_way("p1", "uwv", (EXECUTIVE,)))
    assert await holders(model, EXECUTIVE, "uwv") == []
    await model._on_professional(state("p1", "uwv", (EXECUTIVE,), 1))
    assert await holders(model, EXECUTIVE, "uwv") == ["p1"]
    assert await listed(model, EXECUTIVE, "uwv") == {"p1": 1}
