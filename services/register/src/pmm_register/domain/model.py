"""The register's domain: organisations, their membership, and maatwerk professionals.

Pure and synchronous: methods check a rule and change state; the use cases publish the new
state on the changelog through the runtime's change loop (one atomic write of both). Errors
are the runtime's (``pmm_runtime.errors``), so each carries its HTTP status and field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Any

from pmm_contracts.events.register import (
    Availability,
    Commitment,
    OrganisationState,
    ProfessionalState,
)
from pmm_contracts.vocabulary import LifeDomain, OrganisationKind, Role
from pmm_runtime.errors import Conflict, NotInState, RuleViolation

PMM_CODE = "pmm"
"""PMM itself: home of the Loket's regievoerders, the LET chair and PMM staff."""

PMM_ONLY_ROLES = frozenset(
    {Role.CASE_DIRECTOR, Role.LET_CHAIR, Role.PMM_STAFF, Role.REGISTER_ADMIN}
)

ROLES_BY_KIND: dict[OrganisationKind, frozenset[Role]] = {
    OrganisationKind.MINISTRY: frozenset(
        {Role.MAATWERK_PROFESSIONAL, Role.AMBASSADOR, Role.EXECUTIVE, Role.BUDGET_HOLDER}
    ),
    OrganisationKind.EXECUTING_ORGANISATION: frozenset(
        {Role.MAATWERK_PROFESSIONAL, Role.EXECUTIVE}
    ),
    OrganisationKind.MUNICIPALITY: frozenset({Role.MAATWERK_PROFESSIONAL, Role.EXECUTIVE}),
    OrganisationKind.HEALTH_INSURER: frozenset({Role.MAATWERK_PROFESSIONAL, Role.EXECUTIVE}),
    OrganisationKind.CARE_PROVIDER: frozenset({Role.MAATWERK_PROFESSIONAL, Role.EXECUTIVE}),
    OrganisationKind.CIVIL_SOCIETY: frozenset({Role.MAATWERK_PROFESSIONAL, Role.EXECUTIVE}),
}
"""Which roles fit an organisation's kind (an ambassador belongs to a ministry)."""


class Membership(StrEnum):
    """Where an organisation stands in the register (derived from its join and leave dates)."""

    CANDIDATE = "candidate"  # known to the register, never joined
    MEMBER = "member"
    LEFT = "left"


MEMBERSHIP_TRANSITIONS: dict[Membership, frozenset[Membership]] = {
    Membership.CANDIDATE: frozenset({Membership.MEMBER}),
    Membership.MEMBER: frozenset({Membership.LEFT}),
    Membership.LEFT: frozenset({Membership.MEMBER}),  # an organisation may join again
}
"""The membership workflow: every allowed move; anything else is ``NotInState``."""


class UnknownOrganisation(RuleViolation):
    """A command names an organisation the register does not know."""

    def __init__(self, code: str) -> None:
        super().__init__("organisation", f"unknown organisation {code!r}")


class DuplicateEmail(Conflict):
    """Another entry has this e-mail address (the store's unique index says so)."""

    def __init__(self, email: str) -> None:
        super().__init__(f"{email} is registered already", field="email")


def allowed_roles(organisation: Organisation) -> frozenset[Role]:
    base = ROLES_BY_KIND[organisation.kind]
    if organisation.code == PMM_CODE:
        return base | PMM_ONLY_ROLES | {Role.BUDGET_HOLDER}
    return base


@dataclass
class Organisation:
    code: str
    name: str
    kind: OrganisationKind
    region: str | None = None
    joined_on: date | None = None
    left_on: date | None = None
    commitment: Commitment | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    version: int = 1

    @property
    def id(self) -> str:
        """The aggregate id: the organisation's code."""
        return self.code

    @property
    def membership(self) -> Membership:
        if self.joined_on is None:
            return Membership.CANDIDATE
        return Membership.MEMBER if self.left_on is None else Membership.LEFT

    @property
    def is_member(self) -> bool:
        return self.membership is Membership.MEMBER

    def _require(self, action: str, statuses: Iterable[Membership]) -> None:
        current = self.membership
        if current not in statuses:
            raise NotInState(
                f"{self.code} cannot {action}: it is {current.value}",
                current_status=current.value,
                allowed=[s.value for s in MEMBERSHIP_TRANSITIONS[current]],
                required_status=[s.value for s in statuses],
            )

    def _move(self, to: Membership, action: str) -> None:
        self._require(action, [s for s, moves in MEMBERSHIP_TRANSITIONS.items() if to in moves])

    def join(self, on: date) -> None:
        self._move(Membership.MEMBER, "join")
        self.joined_on, self.left_on = on, None
        self.history.append({"event": "joined", "on": on.isoformat()})

    def commit(self, commitment: Commitment) -> None:
        self._require("commit administratively before it joined", [Membership.MEMBER])
        self.commitment = commitment
        self.history.append(
            {
                "event": "committed",
                "on": commitment.committed_on.isoformat(),
                "signed_by": commitment.signed_by,
            }
        )

    def leave(self, on: date) -> None:
        self._move(Membership.LEFT, "leave")
        if self.joined_on and on < self.joined_on:
            raise RuleViolation("on", "an organisation cannot leave before it joined")
        self.left_on = on
        self.history.append({"event": "left", "on": on.isoformat()})

    def state(self) -> OrganisationState:
        return OrganisationState(
            code=self.code,
            name=self.name,
            kind=self.kind,
            region=self.region,
            joined_on=self.joined_on,
            left_on=self.left_on,
            commitment=self.commitment,
            is_member=self.is_member,
            version=self.version,
        )


_TAG = re.compile(r"[^a-z0-9]+")


def search_terms(*texts: str | None) -> list[str]:
    """Lowercase word tokens for free-text search (name, function, tags)."""
    terms: set[str] = set()
    for text in texts:
        if text:
            terms.update(t for t in _TAG.split(text.lower()) if t)
    return sorted(terms)


@dataclass
class Professional:
    id: str
    organisation: str
    name: str
    email: str
    roles: tuple[Role, ...]
    last_verified_on: date
    function: str | None = None
    life_domains: tuple[LifeDomain, ...] = ()
    tags: tuple[str, ...] = ()
    phone: str | None = None
    urgent_phone: str | None = None
    availability: Availability = field(default_factory=Availability)
    stale: bool = False
    version: int = 1

    @classmethod
    def register(cls, organisation: Organisation, **fields: Any) -> Professional:
        """A new entry: only for a member organisation, with roles that fit it."""
        if not organisation.is_member:
            raise RuleViolation(
                "organisation", f"{organisation.code} has not joined (or has left) the register"
            )
        professional = cls(organisation=organisation.code, **fields)
        professional.check_roles(organisation)
        return professional

    def check_roles(self, organisation: Organisation) -> None:
        if not self.roles:
            raise RuleViolation("roles", "at least one role is required")
        wrong = [r.value for r in self.roles if r not in allowed_roles(organisation)]
        if wrong:
            raise RuleViolation(
                "roles",
                f"role(s) {', '.join(wrong)} do not fit {organisation.code} "
                f"({organisation.kind.value})",
            )

    def update(self, organisation: Organisation, **changes: Any) -> None:
        updated = replace(self, **changes)
        updated.check_roles(organisation)
        self.__dict__.update(updated.__dict__)

    def verify(self, today: date) -> None:
        self.last_verified_on, self.stale = today, False

    def is_due_for_verification(self, today: date, months: int) -> bool:
        return not self.stale and self.last_verified_on <= _months_before(today, months)

    def mark_stale(self) -> None:
        self.stale = True

    def set_absent(self, until: date, deputy_id: str | None, today: date) -> None:
        if until < today:
            raise RuleViolation("until", "the absence would end in the past")
        if deputy_id == self.id:
            raise RuleViolation("deputy_id", "a professional cannot be their own deputy")
        self.availability = Availability(available=False, absent_until=until, deputy_id=deputy_id)

    def set_available(self) -> None:
        self.availability = Availability()

    def is_available(self, today: date) -> bool:
        a = self.availability
        return a.available or (a.absent_until is not None and a.absent_until < today)

    def state(self) -> ProfessionalState:
        return ProfessionalState(
            id=self.id,
            organisation=self.organisation,
            name=self.name,
            function=self.function,
            roles=self.roles,
            life_domains=self.life_domains,
            tags=self.tags,
            email=self.email,
            phone=self.phone,
            urgent_phone=self.urgent_phone,
            availability=self.availability,
            last_verified_on=self.last_verified_on,
            stale=self.stale,
            version=self.version,
        )

    @classmethod
    def from_state(cls, state: ProfessionalState) -> Professional:
        """The entry as its changelog state carries it (the inverse of ``state()``)."""
        return cls(**{name: getattr(state, name) for name in type(state).model_fields})

    def terms(self) -> list[str]:
        return search_terms(self.name, self.function, *self.tags)


def _months_before(today: date, months: int) -> date:
    year, month = divmod(today.year * 12 + today.month - 1 - months, 12)
    day = min(today.day, 28)
    return date(year, month + 1, day)
