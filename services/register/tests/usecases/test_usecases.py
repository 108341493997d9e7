"""The register's use cases with the real domain and the real store (no broker needed).

Each change is checked where it lands: the entry's document, its outbox (the changelog
event with the new version, on the right topic) and its audit trail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from pmm_contracts.topics import (
    REGISTER_ORGANISATIONS,
    REGISTER_PROFESSIONALS,
    REGISTER_VERIFICATIONS,
)
from pmm_contracts.vocabulary import OrganisationKind, Role
from pmm_register.adapters.repository import Organisations, Professionals
from pmm_register.adapters.search_index import SearchIndex
from pmm_register.domain.model import (
    MEMBERSHIP_TRANSITIONS,
    DuplicateEmail,
    Membership,
    UnknownOrganisation,
)
from pmm_register.service import commands as c
from pmm_register.service import usecases as uc
from pmm_register.settings import RegisterSettings
from pmm_runtime.auth import Identity
from pmm_runtime.changes import Changes
from pmm_runtime.errors import Conflict, Forbidden, NotFound, NotInState, RuleViolation
from pmm_runtime.http import PageQuery
from pmm_runtime.platform import Platform

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 23)
ADMIN = Identity("admin-1", "pmm", frozenset({Role.REGISTER_ADMIN.value}))
READER = Identity("uwv-reader", "uwv", frozenset({Role.MAATWERK_PROFESSIONAL.value}))


@pytest.fixture
async def deps(make_settings: Callable[..., RegisterSettings]) -> AsyncIterator[uc.Deps]:
    settings = make_settings(RegisterSettings)
    platform = Platform(settings, configure_logs=False)
    professionals = Professionals(platform.store("professionals"), SearchIndex())
    await professionals.create_indexes()
    deps = uc.Deps(
        organisations=Organisations(platform.store("organisations")),
        professionals=professionals,
        changes=Changes(source=settings.source),
        today=lambda: TODAY,
    )
    for code, kind in (
        ("pmm", OrganisationKind.MINISTRY),
        ("uwv", OrganisationKind.EXECUTING_ORGANISATION),
    ):
        await uc.create_organisation(
            deps,
            ADMIN,
            c.CreateOrganisation(
                code=code, name=code.upper(), kind=kind, joined_on=date(2024, 1, 1)
            ),
        )
    yield deps
    await platform.mongo.close()


def person(pid: str, **extra: Any) -> c.RegisterProfessional:
    body: dict[str, Any] = {
        "id": pid,
        "organisation": "uwv",
        "name": f"Anna {pid}",
        "roles": ["maatwerk_professional"],
        "email": f"{pid}@uwv.nl",
        "phone": "+31 20 555 0101",
    }
    body.update(extra)
    return c.RegisterProfessional.model_validate(body)


async def document(repo: Organisations | Professionals, aggregate_id: str) -> dict[str, Any]:
    found = await repo.store.get(aggregate_id)
    assert found is not None
    return found


def outbox(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    """(topic, value) of every event waiting in the entry's outbox, in order."""
    return [(e["topic"], e["value"]) for e in doc.get("_outbox", [])]


# Membership: the workflow table, walked through the public commands -----------------------


async def organisation_in(deps: uc.Deps, status: Membership, code: str) -> None:
    joined = date(2024, 1, 1) if status is not Membership.CANDIDATE else None
    cmd = c.CreateOrganisation(
        code=code, name=code, kind=OrganisationKind.MUNICIPALITY, joined_on=joined
    )
    await uc.create_organisation(deps, ADMIN, cmd)
    if status is Membership.LEFT:
        await uc.leave(deps, ADMIN, code, c.Leave(on=date(2025, 1, 1)))


COMMANDS = {Membership.MEMBER: "join", Membership.LEFT: "leave"}


@pytest.mark.parametrize("status", list(Membership))
@pytest.mark.parametrize("target", sorted(COMMANDS))
async def test_the_membership_table_through_join_and_leave(
    deps: uc.Deps, status: Membership, target: Membership
) -> None:
    code = f"gm{list(Membership).index(status)}{sorted(COMMANDS).index(target)}"
    await organisation_in(deps, status, code)
    on = date(2026, 1, 1)
    command = (
        uc.join(deps, ADMIN, code, c.Join(on=on))
        if target is Membership.MEMBER
        else uc.leave(deps, ADMIN, code, c.Leave(on=on))
    )
    if target in MEMBERSHIP_TRANSITIONS[status]:
        org = await command
        assert org.membership is target
        (topic, value), *_ = outbox(await document(deps.organisations, code))[-1:]
        assert topic == REGISTER_ORGANISATIONS
        assert value["data"]["is_member"] is (target is Membership.MEMBER)
        assert value["data"]["version"] == org.version
    else:
        before = await document(deps.organisations, code)
        with pytest.raises(NotInState) as refused:
            await command
        problem = refused.value.problem()
        assert problem["current_status"] == status.value
        assert problem["allowed"] == sorted(s.value for s in MEMBERSHIP_TRANSITIONS[status])
        assert status.value not in problem["required_status"]
        assert (await document(deps.organisations, code))["_version"] == before["_version"]


async def test_commitment_needs_membership_and_leaving_not_before_joining(deps: uc.Deps) -> None:
    await organisation_in(deps, Membership.CANDIDATE, "gm0001")
    commitment = c.Commit(committed_on=TODAY, signed_by="DG", time=True)
    with pytest.raises(NotInState) as not_member:
        await uc.commit(deps, ADMIN, "gm0001", commitment)
    assert not_member.value.problem()["required_status"] == ["member"]
    with pytest.raises(RuleViolation) as early:
        await uc.leave(deps, ADMIN, "uwv", c.Leave(on=date(2023, 1, 1)))
    assert early.value.field == "on"
    org = await uc.commit(deps, ADMIN, "uwv", commitment)
    assert org.commitment is not None
    assert [h["event"] for h in org.history] == ["joined", "committed"]
    with pytest.raises(NotFound):
        await uc.join(deps, ADMIN, "nosuch", c.Join(on=TODAY))
    with pytest.raises(Conflict) as twice:
        await uc.create_organisation(
            deps,
            ADMIN,
            c.CreateOrganisation(code="uwv", name="UWV", kind=OrganisationKind.MINISTRY),
        )
    assert twice.value.field == "code"


async def test_only_an_admin_changes_and_only_members_read(deps: uc.Deps) -> None:
    with pytest.raises(Forbidden):
        await uc.join(deps, READER, "uwv", c.Join(on=TODAY))
    with pytest.raises(Forbidden):
        await uc.register_professional(deps, READER, person("uwv-x"))
    outsider = Identity("x", "gm9999", frozenset({Role.MAATWERK_PROFESSIONAL.value}))
    with pytest.raises(Forbidden):
        await uc.list_organisations(deps, outsider, PageQuery())
    total, page = await uc.list_organisations(deps, READER, PageQuery(page=1, page_size=1))
    assert (total, [o.code for o in page]) == (2, ["pmm"])


# Professionals ------------------------------------------------------------------------------


async def test_registration_publishes_the_state_and_the_index_learns_it_at_once(
    deps: uc.Deps,
) -> None:
    created = await uc.register_professional(deps, ADMIN, person("uwv-anna"))
    doc = await document(deps.professionals, "uwv-anna")
    ((topic, value),) = outbox(doc)
    assert topic == REGISTER_PROFESSIONALS
    assert value["type"] == "nl.maatwerk.register.professional.state"
    assert value["subject"] == "uwv-anna"
    assert value["data"]["version"] == 1
    assert doc["email_key"] == "uwv-anna@uwv.nl"
    (audit,) = doc["_audit"]
    assert (audit["actor"], audit["action"]) == (ADMIN.actor, "professional.registered")
    assert deps.professionals.index is not None
    assert deps.professionals.index.get("uwv-anna") == created


async def test_a_change_writes_its_state_and_what_changed_and_a_no_op_writes_nothing(
    deps: uc.Deps,
) -> None:
    await uc.register_professional(deps, ADMIN, person("uwv-anna"))
    me = Identity("uwv-anna", "uwv", frozenset({Role.MAATWERK_PROFESSIONAL.value}))
    changed = await uc.update_professional(
        deps, me, "uwv-anna", c.UpdateProfessional(function="consulent")
    )
    assert changed.version == 2
    doc = await document(deps.professionals, "uwv-anna")
    assert outbox(doc)[-1][1]["data"]["function"] == "consulent"
    assert outbox(doc)[-1][1]["data"]["version"] == 2
    last = doc["_audit"][-1]
    assert last["action"] == "professional.updated"
    assert last["old"]["function"] is None
    assert last["new"]["function"] == "consulent"
    again = await uc.update_professional(
        deps, me, "uwv-anna", c.UpdateProfessional(function="consulent")
    )
    assert again.version == 2  # nothing changed: no write, no event
    assert len(outbox(await document(deps.professionals, "uwv-anna"))) == 2
    with pytest.raises(Forbidden):  # roles are for an administrator
        await uc.update_professional(
            deps, me, "uwv-anna", c.UpdateProfessional(roles=(Role.EXECUTIVE,))
        )
    with pytest.raises(RuleViolation) as wrong:
        await uc.update_professional(
            deps, ADMIN, "uwv-anna", c.UpdateProfessional(roles=(Role.AMBASSADOR,))
        )
    assert wrong.value.field == "roles"


async def test_an_address_in_use_is_a_conflict_on_registration_and_on_change(deps: uc.Deps) -> None:
    await uc.register_professional(deps, ADMIN, person("uwv-one"))
    await uc.register_professional(deps, ADMIN, person("uwv-two"))
    with pytest.raises(DuplicateEmail) as on_create:
        await uc.register_professional(deps, ADMIN, person("uwv-three", email="UWV-ONE@uwv.nl"))
    assert on_create.value.field == "email"
    with pytest.raises(DuplicateEmail) as on_change:
        await uc.update_professional(
            deps, ADMIN, "uwv-two", c.UpdateProfessional(email="uwv-one@uwv.nl")
        )
    assert on_change.value.status == 409
    assert (await document(deps.professionals, "uwv-two"))["email"] == "uwv-two@uwv.nl"
    with pytest.raises(Conflict) as same_id:
        await uc.register_professional(deps, ADMIN, person("uwv-one", email="other@uwv.nl"))
    assert same_id.value.field == "id"


async def test_registration_rules_name_their_field(deps: uc.Deps) -> None:
    with pytest.raises(UnknownOrganisation) as unknown:
        await uc.register_professional(deps, ADMIN, person("x-1", organisation="nosuch"))
    assert unknown.value.field == "organisation"
    await organisation_in(deps, Membership.LEFT, "gm0002")
    with pytest.raises(RuleViolation) as left:
        await uc.register_professional(deps, ADMIN, person("x-2", organisation="gm0002"))
    assert left.value.field == "organisation"
    with pytest.raises(RuleViolation):
        await uc.register_professional(deps, ADMIN, person("x-3", roles=["case_director"]))


async def test_absence_with_a_deputy_and_who_to_contact(deps: uc.Deps) -> None:
    await uc.register_professional(deps, ADMIN, person("uwv-anna", urgent_phone="+31 6 1234 5678"))
    await uc.register_professional(
        deps, ADMIN, person("uwv-bert", name="Bert", urgent_phone="+31 6 5555 0000")
    )
    with pytest.raises(RuleViolation) as unknown_deputy:
        await uc.set_absence(
            deps, ADMIN, "uwv-anna", c.Absence(until=date(2027, 1, 1), deputy_id="nobody")
        )
    assert unknown_deputy.value.field == "deputy_id"
    with pytest.raises(RuleViolation) as past:
        await uc.set_absence(deps, ADMIN, "uwv-anna", c.Absence(until=date(2026, 1, 1)))
    assert past.value.field == "until"
    away = await uc.set_absence(
        deps, ADMIN, "uwv-anna", c.Absence(until=date(2027, 1, 1), deputy_id="uwv-bert")
    )
    assert away.availability.available is False
    contacts = await uc.contact_for(deps, READER, "uwv", None, urgent=True)
    assert [(x.professional.id, x.via_deputy_of) for x in contacts] == [("uwv-bert", None)]
    await uc.set_absence(deps, ADMIN, "uwv-bert", c.Absence(until=date(2027, 1, 1)))
    assert await uc.contact_for(deps, READER, "uwv", None, urgent=False) == []
    back = await uc.set_absence(deps, ADMIN, "uwv-anna", None)
    assert back.availability.available is True
    with pytest.raises(UnknownOrganisation):
        await uc.contact_for(deps, READER, "nosuch", None, urgent=False)


async def test_search_pages_available_people_first(deps: uc.Deps) -> None:
    for pid, name in (("uwv-c", "Cees"), ("uwv-a", "Anna"), ("uwv-b", "Bert")):
        await uc.register_professional(deps, ADMIN, person(pid, name=name))
    await uc.set_absence(deps, ADMIN, "uwv-a", c.Absence(until=date(2027, 1, 1)))
    query = c.SearchQuery(organisation="uwv")
    total, first = await uc.search(deps, READER, query, PageQuery(page=1, page_size=2))
    _, second = await uc.search(deps, READER, query, PageQuery(page=2, page_size=2))
    assert total == 3
    assert [p.name for p in first + second] == ["Bert", "Cees", "Anna"]
    _, found = await uc.search(deps, READER, c.SearchQuery(q="cees"), PageQuery())
    assert [p.id for p in found] == ["uwv-c"]


async def test_removal_erases_the_contact_data_everywhere_and_in_the_audit(deps: uc.Deps) -> None:
    """AVG: a removed professional's contact data is gone from the store, the audit trail
    and (tombstone) every read model."""
    await uc.register_professional(deps, ADMIN, person("uwv-gone"))
    await uc.update_professional(
        deps, ADMIN, "uwv-gone", c.UpdateProfessional(phone="+31 20 555 9999")
    )
    await uc.remove_professional(deps, ADMIN, "uwv-gone", "AVG erasure request")
    doc = await document(deps.professionals, "uwv-gone")
    assert doc["removed"] is True
    assert (doc["name"], doc["email"], doc["phone"]) == (None, None, None)
    assert doc["_outbox"][-1]["value"] is None  # the tombstone
    assert doc["_outbox"][-1]["topic"] == REGISTER_PROFESSIONALS
    assert all(e.get("old") is None and e.get("new") is None for e in doc["_audit"])
    assert doc["_audit"][-1]["reason"] == "AVG erasure request"
    assert "555 9999" not in repr(doc["_audit"])  # the phone (not a timestamp's 555000 µs)
    assert deps.professionals.index is not None
    assert deps.professionals.index.get("uwv-gone") is None
    with pytest.raises(NotFound):
        await uc.get_professional(deps, READER, "uwv-gone")
    with pytest.raises(NotFound):
        await uc.verify(deps, ADMIN, "uwv-gone")
    # The address is free again.
    await uc.register_professional(deps, ADMIN, person("uwv-new", email="uwv-gone@uwv.nl"))


async def test_the_stale_scan_asks_the_ready_index_not_the_store(deps: uc.Deps) -> None:
    """Once the replica's index has replayed the changelog, the periodic stale scan reads no
    professional by a filter (FerretDB would decode every entry each hour): the index names
    the due ones, longest unverified first, and the change loop reads each by its id."""
    index = deps.professionals.index
    assert index is not None
    for pid, verified in (("uwv-old", date(2025, 1, 1)), ("uwv-older", date(2024, 6, 1))):
        await uc.register_professional(deps, ADMIN, person(pid))
        await deps.professionals.store.collection.update_one(
            {"_id": pid}, {"$set": {"last_verified_on": verified.isoformat()}}
        )
        held = index.get(pid)
        assert held is not None
        held.last_verified_on = verified
    await uc.register_professional(deps, ADMIN, person("uwv-fresh"))
    index.ready = True
    assert await deps.professionals.due_for_verification(date(2025, 6, 1), 10) == [
        "uwv-older",
        "uwv-old",
    ]
    assert await deps.professionals.due_for_verification(date(2025, 6, 1), 1) == ["uwv-older"]
    later = replace(deps, today=lambda: date(2026, 3, 1))  # 12 months: both are due
    assert await uc.request_verifications(later) == 2
    assert await deps.professionals.due_for_verification(date(2025, 6, 1), 10) == []
    assert await uc.request_verifications(later) == 0  # asked once


async def test_stale_entries_are_asked_once_and_verifying_clears_it(deps: uc.Deps) -> None:
    await uc.register_professional(deps, ADMIN, person("uwv-old"))
    next_year = replace(deps, today=lambda: date(2027, 12, 1))
    assert await uc.request_verifications(next_year) == 1
    assert await uc.request_verifications(next_year) == 0  # asked once, not at every scan
    doc = await document(deps.professionals, "uwv-old")
    (state_topic, state), (request_topic, request) = outbox(doc)[-2:]
    assert state_topic == REGISTER_PROFESSIONALS
    assert state["data"]["stale"] is True
    assert request_topic == REGISTER_VERIFICATIONS
    assert request["data"]["professional_id"] == "uwv-old"
    assert doc["_audit"][-1]["actor"] == "system"
    me = Identity("uwv-old", "uwv", frozenset({Role.MAATWERK_PROFESSIONAL.value}))
    verified = await uc.verify(next_year, me, "uwv-old")
    assert verified.stale is False
    assert verified.last_verified_on == date(2027, 12, 1)
