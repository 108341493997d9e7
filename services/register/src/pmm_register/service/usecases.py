"""Use cases of the register: async functions taking their dependencies as arguments.

Every change goes through the runtime's change loop (``Changes.apply`` / ``create``): the
pure domain change, the entry's new state on its compacted changelog and one audit entry
in one atomic write, retried on a version conflict by the runtime's one rule.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypeVar

from pmm_contracts.envelope import EventData
from pmm_contracts.events.register import Commitment, VerificationRequested
from pmm_contracts.vocabulary import Role
from pmm_register.adapters.repository import Organisations, Professionals
from pmm_register.adapters.search_index import Filters
from pmm_register.domain.model import (
    Organisation,
    Professional,
    UnknownOrganisation,
    _months_before,
    search_terms,
)
from pmm_register.service import commands as c
from pmm_runtime.auth import Identity
from pmm_runtime.changes import Aggregates, Changes
from pmm_runtime.errors import Conflict, Forbidden, NoSuchAggregate, NotFound, RuleViolation
from pmm_runtime.http import PageQuery

SYSTEM = "system"
CONTACT_CANDIDATES = 500
"""At most this many people of one organisation are considered for ``/contact``."""


@dataclass(frozen=True)
class Deps:
    organisations: Organisations
    professionals: Professionals
    changes: Changes
    today: Callable[[], date] = lambda: datetime.now(UTC).date()
    stale_after_months: int = 12


Entry = TypeVar("Entry", Organisation, Professional)


def published(change: Callable[[Entry], object]) -> Callable[[Entry], list[EventData]]:
    """``change`` as a domain change for the change loop: when the entry's changelog state
    changed, its new state (with the version this write gives it) is the event."""

    def run(entry: Entry) -> list[EventData]:
        before = entry.state()
        change(entry)
        after = entry.state()
        if after == before:
            return []
        return [after.model_copy(update={"version": entry.version + 1})]

    return run


# Access ------------------------------------------------------------------------------------


async def require_reader(deps: Deps, who: Identity) -> None:
    """Reading needs a token of a professional of a joined organisation."""
    org = await deps.organisations.get(who.organisation)
    if org is None or not org.is_member:
        raise Forbidden("only professionals of a joined organisation may read the register")


def require_admin(who: Identity) -> None:
    if not who.has_any(Role.REGISTER_ADMIN):
        raise Forbidden("requires the register_admin role")


def require_admin_or_self(who: Identity, professional_id: str) -> None:
    if not (who.has_any(Role.REGISTER_ADMIN) or who.subject == professional_id):
        raise Forbidden("only the professional or a register administrator may change this entry")


# Organisations -----------------------------------------------------------------------------


async def list_organisations(
    deps: Deps, who: Identity, paging: PageQuery
) -> tuple[int, list[Organisation]]:
    await require_reader(deps, who)
    return await deps.organisations.page(skip=paging.skip, limit=paging.page_size)


async def get_organisation(deps: Deps, who: Identity, code: str) -> Organisation:
    await require_reader(deps, who)
    org = await deps.organisations.get(code)
    if org is None:
        raise NotFound(f"no organisation {code!r} in the register")
    return org


async def create_organisation(
    deps: Deps, who: Identity, cmd: c.CreateOrganisation, *, reason: str | None = None
) -> Organisation:
    require_admin(who)
    org = Organisation(code=cmd.code, name=cmd.name, kind=cmd.kind, region=cmd.region)
    if cmd.joined_on:
        org.join(cmd.joined_on)
    created = await deps.changes.create(
        deps.organisations,
        org,
        [org.state()],
        actor=who.actor,
        action="organisation.created",
        reason=reason,
    )
    if not created:
        raise Conflict(f"organisation {cmd.code!r} exists already", field="code")
    return org


async def _change(
    deps: Deps,
    repo: Aggregates[Entry],
    who: Identity,
    entry_id: str,
    action: str,
    change: Callable[[Entry], object],
) -> Entry:
    """One command on one entry, through the change loop; its new state is published."""
    done = await deps.changes.apply(
        repo, entry_id, None, published(change), actor=who.actor, action=action
    )
    return done.aggregate


async def _change_org(
    deps: Deps, who: Identity, code: str, action: str, change: Callable[[Organisation], object]
) -> Organisation:
    require_admin(who)
    return await _change(deps, deps.organisations, who, code, action, change)


async def update_organisation(
    deps: Deps, who: Identity, code: str, cmd: c.UpdateOrganisation
) -> Organisation:
    changes = cmd.model_dump(exclude_none=True)

    def update(org: Organisation) -> None:
        for key, value in changes.items():
            setattr(org, key, value)

    return await _change_org(deps, who, code, "organisation.updated", update)


async def join(deps: Deps, who: Identity, code: str, cmd: c.Join) -> Organisation:
    return await _change_org(deps, who, code, "organisation.joined", lambda o: o.join(cmd.on))


async def leave(deps: Deps, who: Identity, code: str, cmd: c.Leave) -> Organisation:
    return await _change_org(deps, who, code, "organisation.left", lambda o: o.leave(cmd.on))


async def commit(deps: Deps, who: Identity, code: str, cmd: c.Commit) -> Organisation:
    commitment = Commitment(**cmd.model_dump())
    return await _change_org(
        deps, who, code, "organisation.committed", lambda o: o.commit(commitment)
    )


# Professionals -----------------------------------------------------------------------------


async def get_professional(deps: Deps, who: Identity, professional_id: str) -> Professional:
    await require_reader(deps, who)
    return await _professional(deps, professional_id)


async def _professional(deps: Deps, professional_id: str) -> Professional:
    professional = await deps.professionals.get(professional_id)
    if professional is None:
        raise NotFound(f"no professional {professional_id!r} in the register")
    return professional


async def register_professional(
    deps: Deps, who: Identity, cmd: c.RegisterProfessional
) -> Professional:
    require_admin(who)
    org = await deps.organisations.get(cmd.organisation)
    if org is None:
        raise UnknownOrganisation(cmd.organisation)
    professional = Professional.register(
        org,
        id=cmd.id or f"p-{uuid.uuid4().hex[:12]}",
        last_verified_on=deps.today(),
        **cmd.model_dump(exclude={"id", "organisation"}),
    )
    created = await deps.changes.create(
        deps.professionals,
        professional,
        [professional.state()],
        actor=who.actor,
        action="professional.registered",
    )
    if not created:
        raise Conflict(f"professional {professional.id!r} exists already", field="id")
    return professional


async def _change_pro(
    deps: Deps, who: Identity, pid: str, action: str, change: Callable[[Professional], object]
) -> Professional:
    return await _change(deps, deps.professionals, who, pid, action, change)


async def update_professional(
    deps: Deps, who: Identity, professional_id: str, cmd: c.UpdateProfessional
) -> Professional:
    require_admin_or_self(who, professional_id)
    changes = cmd.model_dump(exclude_none=True)
    if "roles" in changes and not who.has_any(Role.REGISTER_ADMIN):
        raise Forbidden("only a register administrator may change roles")
    professional = await _professional(deps, professional_id)
    org = await deps.organisations.get(professional.organisation)
    if org is None:  # pragma: no cover - an entry's organisation is never deleted
        raise UnknownOrganisation(professional.organisation)
    return await _change_pro(
        deps,
        who,
        professional_id,
        "professional.updated",
        lambda p: p.update(org, **changes),
    )


async def verify(deps: Deps, who: Identity, professional_id: str) -> Professional:
    require_admin_or_self(who, professional_id)
    today = deps.today()
    return await _change_pro(
        deps,
        who,
        professional_id,
        "professional.verified",
        lambda p: p.verify(today),
    )


async def set_absence(
    deps: Deps, who: Identity, professional_id: str, cmd: c.Absence | None
) -> Professional:
    require_admin_or_self(who, professional_id)
    deputy = cmd.deputy_id if cmd else None
    if deputy is not None and await deps.professionals.get(deputy) is None:
        raise RuleViolation("deputy_id", f"no professional {deputy!r} in the register")
    today = deps.today()

    def change(p: Professional) -> None:
        if cmd is None:
            p.set_available()
        else:
            p.set_absent(cmd.until, cmd.deputy_id, today)

    return await _change_pro(deps, who, professional_id, "professional.availability", change)


async def remove_professional(
    deps: Deps, who: Identity, professional_id: str, reason: str | None
) -> None:
    """Leaving or GDPR erasure: contact data removed here and, by tombstone, everywhere."""
    require_admin_or_self(who, professional_id)
    professional = await _professional(deps, professional_id)
    if not await deps.professionals.remove(professional, actor=who.actor, reason=reason):
        raise Conflict(f"professional {professional_id!r} changed meanwhile; try again")


# Staleness ---------------------------------------------------------------------------------


async def request_verifications(deps: Deps, *, batch: int = 500) -> int:
    """Mark entries not verified for the configured months as stale and ask their owners
    (once: a stale entry is not asked again until it was verified)."""
    today = deps.today()
    months = deps.stale_after_months

    def mark(professional: Professional) -> list[EventData]:
        if not professional.is_due_for_verification(today, months):
            return []  # verified or marked meanwhile
        professional.mark_stale()
        return [
            professional.state().model_copy(update={"version": professional.version + 1}),
            VerificationRequested(
                professional_id=professional.id,
                organisation=professional.organisation,
                last_verified_on=professional.last_verified_on,
                stale_since=today,
            ),
        ]

    marked = 0
    cutoff = _months_before(today, months)
    for professional_id in await deps.professionals.due_for_verification(cutoff, batch):
        try:
            done = await deps.changes.apply(
                deps.professionals,
                professional_id,
                None,
                mark,
                actor=SYSTEM,
                action="professional.marked_stale",
            )
        except (NoSuchAggregate, Conflict):
            continue  # removed meanwhile, or busy: the next scan asks again
        marked += int(done.changed)
    return marked


# Search ------------------------------------------------------------------------------------


async def search(
    deps: Deps, who: Identity, query: c.SearchQuery, paging: PageQuery
) -> tuple[int, list[Professional]]:
    """Entries matching every filter, available people first, then by name."""
    await require_reader(deps, who)
    filters = Filters(
        organisation=query.organisation,
        roles=(query.role.value,) if query.role else (),
        life_domain=query.life_domain.value if query.life_domain else None,
        tag=query.tag,
        terms=tuple(search_terms(query.q)) if query.q else (),
    )
    return await deps.professionals.search(filters, skip=paging.skip, limit=paging.page_size)


@dataclass(frozen=True)
class Contact:
    professional: Professional
    via_deputy_of: str | None = None


async def contact_for(
    deps: Deps, who: Identity, organisation: str, life_domain: str | None, urgent: bool
) -> list[Contact]:
    """Who to contact at ``organisation`` for ``life_domain``: available people first,
    a deputy in place of an absent one; with ``urgent`` only those with an urgent line."""
    await require_reader(deps, who)
    if await deps.organisations.get(organisation) is None:
        raise UnknownOrganisation(organisation)
    roles = (Role.MAATWERK_PROFESSIONAL.value, Role.AMBASSADOR.value)
    filters = Filters(organisation=organisation, roles=roles, life_domain=life_domain)
    _, candidates = await deps.professionals.search(filters, skip=0, limit=CONTACT_CANDIDATES)
    today = deps.today()
    contacts: list[Contact] = []
    seen: set[str] = set()
    for professional in candidates:
        if professional.is_available(today):
            chosen = Contact(professional)
        elif professional.availability.deputy_id:
            deputy = await deps.professionals.get(professional.availability.deputy_id)
            if deputy is None or not deputy.is_available(today):
                continue
            chosen = Contact(deputy, via_deputy_of=professional.id)
        else:
            continue
        if chosen.professional.id in seen:
            continue
        if urgent and not chosen.professional.urgent_phone:
            continue
        seen.add(chosen.professional.id)
        contacts.append(chosen)
    return contacts
