"""The in-memory search index (pure): versions, removal, filters, order and paging."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date

from pmm_contracts.events.register import Availability
from pmm_contracts.vocabulary import LifeDomain, Role
from pmm_register.adapters.search_index import SORT_DIRECTLY, Filters, SearchIndex
from pmm_register.app import create_app
from pmm_register.domain.model import Professional
from pmm_register.settings import RegisterSettings
from pmm_runtime.auth import generate_key_pair


def pro(pid: str, org: str = "uwv", **extra: object) -> Professional:
    fields: dict[str, object] = {
        "id": pid,
        "organisation": org,
        "name": f"Name {pid}",
        "email": f"{pid}@{org}.nl",
        "roles": (Role.MAATWERK_PROFESSIONAL,),
        "last_verified_on": date(2026, 1, 1),
        "life_domains": (LifeDomain.INCOME,),
        "tags": ("Participatiewet",),
    }
    fields.update(extra)
    return Professional(**fields)  # type: ignore[arg-type]


def ids(result: tuple[int, list[Professional]]) -> list[str]:
    return [p.id for p in result[1]]


def test_filters_combine_and_available_people_come_first() -> None:
    index = SearchIndex()
    index.apply(pro("a", name="Zoe Jansen"))
    index.apply(pro("b", name="Anna de Vries", function="klantmanager"))
    index.apply(pro("c", org="svb", name="Carl", roles=(Role.AMBASSADOR,)))
    index.apply(pro("d", name="Bob", availability=Availability(available=False)))
    index.apply(pro("e", name="Eva", life_domains=(LifeDomain.HOUSING,), tags=("Wmo",)))

    assert ids(index.search(Filters(organisation="uwv"), skip=0, limit=10)) == [
        "b",  # Anna
        "e",  # Eva
        "a",  # Zoe
        "d",  # Bob, away: last
    ]
    assert ids(index.search(Filters(terms=("vries", "klantmanager")), skip=0, limit=10)) == ["b"]
    assert ids(index.search(Filters(terms=("vries", "nobody")), skip=0, limit=10)) == []
    assert ids(index.search(Filters(roles=("ambassador",)), skip=0, limit=10)) == ["c"]
    both = Filters(roles=("ambassador", "maatwerk_professional"), life_domain="housing")
    assert ids(index.search(both, skip=0, limit=10)) == ["e"]
    assert ids(index.search(Filters(tag="Wmo"), skip=0, limit=10)) == ["e"]
    assert index.search(Filters(), skip=1, limit=2)[0] == 5


def test_an_older_version_never_overwrites_and_a_removal_sticks() -> None:
    index = SearchIndex()
    index.apply(pro("a", name="New name", version=3))
    index.apply(pro("a", name="Old name", version=2))  # a late, older changelog record
    assert index.get("a") is not None
    assert index.get("a").name == "New name"  # type: ignore[union-attr]
    assert ids(index.search(Filters(terms=("old",)), skip=0, limit=10)) == []
    index.remove("a", 4)
    index.apply(pro("a", name="New name", version=3))  # replayed before the tombstone
    assert index.get("a") is None
    assert index.search(Filters(organisation="uwv"), skip=0, limit=10) == (0, [])


def test_a_change_moves_the_entry_between_postings() -> None:
    index = SearchIndex()
    first = pro("a", tags=("Wmo",))
    index.apply(first)
    index.apply(replace(first, tags=("Jeugdwet",), version=2))
    assert ids(index.search(Filters(tag="Wmo"), skip=0, limit=10)) == []
    assert ids(index.search(Filters(tag="Jeugdwet"), skip=0, limit=10)) == ["a"]


def test_many_matches_page_the_same_as_a_full_sort() -> None:
    rnd = random.Random(7)
    index = SearchIndex()
    everyone = [
        pro(
            f"p{n:05d}",
            org=rnd.choice(["uwv", "svb"]),
            name=f"{rnd.choice(['Anna', 'Bert', 'Cees'])} {n % 97}",
            availability=Availability(available=rnd.random() > 0.2),
        )
        for n in range(3 * SORT_DIRECTLY)
    ]
    for p in everyone:
        index.apply(p)
    expected = sorted(
        (p for p in everyone if p.organisation == "uwv"),
        key=lambda p: (not p.availability.available, p.name, p.id),
    )
    assert len(expected) > SORT_DIRECTLY  # the walk, not the direct sort
    for skip in (0, 20, 1500):
        total, page = index.search(Filters(organisation="uwv"), skip=skip, limit=20)
        assert total == len(expected)
        assert [p.id for p in page] == [p.id for p in expected[skip : skip + 20]]


async def test_a_replica_is_not_ready_before_its_index() -> None:
    # Needs nothing a make target creates: a key pair of its own, no broker, no store.
    settings = RegisterSettings(jwt_public_key=generate_key_pair()[1])
    app = create_app(settings)
    checks = app.state.platform._readiness  # the check /readyz runs besides broker and store
    assert await checks["search_index"]() is False
    app.state.deps.professionals.index.ready = True
    assert await checks["search_index"]() is True


def test_the_asyncapi_document_lists_what_the_index_consumes() -> None:
    app = create_app(RegisterSettings(jwt_public_key=generate_key_pair()[1]))
    document = app.state.platform.asyncapi(title="register", description="-")
    received = {
        channel["address"]: set(channel["messages"])
        for channel_id, channel in document["channels"].items()
        if document["operations"][channel_id]["action"] == "receive"
    }
    assert received == {"pmm.register.professionals": {"nl.maatwerk.register.professional.state"}}
