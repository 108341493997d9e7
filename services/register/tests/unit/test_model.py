"""The register's rules, on the pure domain."""

from datetime import date

import pytest

from pmm_contracts.events.register import Commitment
from pmm_contracts.vocabulary import LifeDomain, OrganisationKind, Role
from pmm_register.domain.model import (
    Organisation,
    Professional,
    search_terms,
)
from pmm_runtime.errors import NotInState, RuleViolation

TODAY = date(2026, 11, 23)


def org(
    code: str = "uwv",
    kind: OrganisationKind = OrganisationKind.EXECUTING_ORGANISATION,
    joined: bool = True,
) -> Organisation:
    o = Organisation(code=code, name=code.upper(), kind=kind)
    if joined:
        o.join(date(2024, 1, 1))
    return o


def pro(organisation: Organisation, *roles: Role, **extra: object) -> Professional:
    fields: dict[str, object] = {
        "id": "p-1",
        "name": "A. de Vries",
        "email": "a@uwv.nl",
        "roles": roles or (Role.MAATWERK_PROFESSIONAL,),
        "last_verified_on": TODAY,
    }
    fields.update(extra)
    return Professional.register(organisation, **fields)


def test_membership_history_join_commit_leave() -> None:
    o = org(joined=False)
    assert not o.is_member
    with pytest.raises(NotInState) as not_joined:
        o.commit(Commitment(committed_on=TODAY, signed_by="DG"))
    assert not_joined.value.current_status == "candidate"
    o.join(date(2024, 1, 1))
    with pytest.raises(NotInState):
        o.join(date(2024, 2, 1))
    o.commit(Commitment(committed_on=date(2024, 3, 1), signed_by="DG", time=True, budget=True))
    with pytest.raises(RuleViolation, match="before it joined") as early:
        o.leave(date(2023, 1, 1))
    assert early.value.field == "on"
    o.leave(date(2025, 1, 1))
    assert not o.is_member
    assert [h["event"] for h in o.history] == ["joined", "committed", "left"]
    assert o.state().is_member is False


def test_only_members_can_register_professionals() -> None:
    with pytest.raises(RuleViolation) as raised:
        pro(org(joined=False))
    assert raised.value.field == "organisation"


@pytest.mark.parametrize(
    ("code", "kind", "role", "allowed"),
    [
        ("szw", OrganisationKind.MINISTRY, Role.AMBASSADOR, True),
        ("uwv", OrganisationKind.EXECUTING_ORGANISATION, Role.AMBASSADOR, False),
        ("pmm", OrganisationKind.MINISTRY, Role.CASE_DIRECTOR, True),
        ("svb", OrganisationKind.EXECUTING_ORGANISATION, Role.CASE_DIRECTOR, False),
        ("pmm", OrganisationKind.MINISTRY, Role.LET_CHAIR, True),
        ("gm0363", OrganisationKind.MUNICIPALITY, Role.EXECUTIVE, True),
        ("gm0363", OrganisationKind.MUNICIPALITY, Role.REGISTER_ADMIN, False),
        ("vws", OrganisationKind.MINISTRY, Role.BUDGET_HOLDER, True),
    ],
)
def test_roles_fit_the_organisation(
    code: str, kind: OrganisationKind, role: Role, allowed: bool
) -> None:
    if allowed:
        assert pro(org(code, kind), role).roles == (role,)
    else:
        with pytest.raises(RuleViolation) as raised:
            pro(org(code, kind), role)
        assert raised.value.field == "roles"


def test_entries_go_stale_after_the_term_and_verifying_clears_it() -> None:
    p = pro(org(), last_verified_on=date(2025, 11, 23))
    assert p.is_due_for_verification(TODAY, months=12)
    assert not p.is_due_for_verification(TODAY, months=13)
    p.mark_stale()
    assert not p.is_due_for_verification(TODAY, months=12)  # asked once, not every scan
    p.verify(TODAY)
    assert p.stale is False
    assert p.last_verified_on == TODAY


def test_absence_with_a_deputy() -> None:
    p = pro(org())
    with pytest.raises(RuleViolation, match="past") as past:
        p.set_absent(date(2026, 1, 1), "p-2", TODAY)
    assert past.value.field == "until"
    with pytest.raises(RuleViolation, match="own deputy") as own:
        p.set_absent(date(2026, 12, 31), "p-1", TODAY)
    assert own.value.field == "deputy_id"
    p.set_absent(date(2026, 12, 31), "p-2", TODAY)
    assert not p.is_available(TODAY)
    assert p.is_available(date(2027, 1, 1))  # the absence has ended
    p.set_available()
    assert p.is_available(TODAY)


def test_search_terms_cover_name_function_and_tags() -> None:
    p = pro(
        org(),
        function="Klantmanager Wajong",
        tags=("Participatiewet", "WW"),
        life_domains=(LifeDomain.INCOME,),
    )
    assert {"vries", "klantmanager", "wajong", "participatiewet", "ww"} <= set(p.terms())
    assert search_terms("  De VRIES ") == ["de", "vries"]


def test_an_entry_survives_its_changelog_state() -> None:
    p = Professional.register(
        org(),
        id="uwv-1",
        name="Anna de Vries",
        email="anna@uwv.nl",
        roles=(Role.MAATWERK_PROFESSIONAL,),
        last_verified_on=TODAY,
        life_domains=(LifeDomain.INCOME,),
        tags=("WW",),
    )
    assert Professional.from_state(p.state()) == p
