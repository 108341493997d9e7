"""Use cases of the register: async functions taking their dependencies as arguments."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pmm_contracts import new_event
from pmm_contracts.events.register import Commitment, VerificationRequested
from pmm_contracts.topics import (
    REGISTER_ORGANISATIONS,
    REGISTER_PROFESSIONALS,
    REGISTER_VERIFICATIONS,
)
from pmm_contracts.vocabulary import Role
from pmm_register.adapters.repository import RegisterRepository
from pmm_register.adapters.search_index import Filters
from pmm_register.domain.model import (
    NotFound,
    Organisation,
    Professional,
    RegisterError,
    UnknownOrganisation,
    _months_before,
    search_terms,
)
from pmm_register.service import commands as c
from pmm_runtime.auth import Identity
from pmm_runtime.outbox import Outgoing, Tombstone, audit_entry


class Conflict(RegisterError):
    """The entry changed meanwhile, or exists already."""


class Forbidden(RegisterError):
    pass


@dataclass(frozen=True)
class Deps:
    repo: RegisterRepository
    source: str
    today: Callable[[], date] = lambda: datetime.now(UTC).date()
    notify: Callable[[], None] = lambda: None
    stale_after_months: int = 12


def _org_event(deps: Deps, org: Organisation) -> Outgoing:
    return Outgoing(
        REGISTER_ORGANISATIONS, new_event(org.state(), subject=org.code, source=deps.source)
    )


def _pro_event(deps: Deps, professional: Professional) -> Outgoing:
    return Outgoing(
        REGISTER_PROFESSIONALS,
        new_event(professional.state(), subject=professional.id, source=deps.source),
    )


async def _get_org(deps: Deps, code: str) -> Organisation:
    org = await deps.repo.organisation(code)
    if org is None:
        raise UnknownOrganisation(f"unknown organisation {code!r}")
    return org


async def _get_pro(deps: Deps, professional_id: str) -> Professional:
    professional = await deps.repo.professional(professional_id)
    if professional is None:
        raise NotFound(f"no professional {professional_id!r} in the register")
    return professional


# Access ------------------------------------------------------------------------------------


async def require_reader(deps: Deps, who: Identity) -> None:
    """Reading needs a token of a professional of a joined organisation."""
    org = await deps.repo.organisation(who.organisation)
    if org is None or not org.is_member:
        raise Forbidden("only professionals of a joined organisation may read the register")


def require_admin(who: Identity) -> None:
    if not who.has_any(Role.REGISTER_ADMIN):
        raise Forbidden("requires the register_admin role")


def require_admin_or_self(who: Identity, professional_id: str) -> None:
    if not (who.has_any(Role.REGISTER_ADMIN) or who.subject == professional_id):
        raise Forbidden("only the professional or a register administrator may change this entry")


# Organisations -----------------------------------------------------------------------------


async def create_organisation(
    deps: Deps, who: Identity, cmd: c.CreateOrganisation, *, reason: str | None = None
) -> Organisation:
    require_admin(who)
    org = Organisation(code=cmd.code, name=cmd.name, kind=cmd.kind, region=cmd.region)
    if cmd.joined_on:
        org.join(cmd.joined_on)
    created = await deps.repo.add_organisation(
        org,
        [_org_event(deps, org)],
        audit_entry(
            actor=who.actor,
            action="organisation.created",
            reason=reason,
            new=cmd.model_dump(mode="json"),
        ),
    )
    if not created:
        raise Conflict(f"organisation {cmd.code!r} exists already")
    deps.notify()
    return org


async def _change_org(
    deps: Deps,
    who: Identity,
    code: str,
    action: str,
    change: Callable[[Organisation], None],
    details: dict[str, Any],
) -> Organisation:
    require_admin(who)
    org = await _get_org(deps, code)
    before = org.state().model_dump(mode="json")
    change(org)
    expected = org.version
    org.version += 1
    saved = await deps.repo.save_organisation(
        org,
        expected,
        [_org_event(deps, org)],
        audit_entry(actor=who.actor, action=action, old=before, new=details),
    )
    if not saved:
        raise Conflict(f"organisation {code!r} changed meanwhile; try again")
    deps.notify()
    return org


async def update_organisation(
    deps: Deps, who: Identity, code: str, cmd: c.UpdateOrganisation
) -> Organisation:
    changes = cmd.model_dump(exclude_none=True)

    def apply(org: Organisation) -> None:
        for key, value in changes.items():
            setattr(org, key, value)

    return await _change_org(
        deps,
        who,
        code,
        "organisation.updated",
        apply,
        cmd.model_dump(mode="json", exclude_none=True),
    )


async def join(deps: Deps, who: Identity, code: str, cmd: c.Join) -> Organisation:
    return await _change_org(
        deps,
        who,
        code,
        "organisation.joined",
        lambda org: org.join(cmd.on),
        cmd.model_dump(mode="json"),
    )


async def leave(deps: Deps, who: Identity, code: str, cmd: c.Leave) -> Organisation:
    return await _change_org(
        deps,
        who,
        code,
        "organisation.left",
        lambda org: org.leave(cmd.on),
        cmd.model_dump(mode="json"),
    )


async def commit(deps: Deps, who: Identity, code: str, cmd: c.Commit) -> Organisation:
    commitment = Commitment(**cmd.model_dump())
    return await _change_org(
        deps,
        who,
        code,
        "organisation.committed",
        lambda org: org.commit(commitment),
        cmd.model_dump(mode="json"),
    )


# Professionals -----------------------------------------------------------------------------


async def register_professional(
    deps: Deps, who: Identity, cmd: c.RegisterProfessional
) -> Professional:
    require_admin(who)
    org = await _get_org(deps, cmd.organisation)
    fields = cmd.model_dump(exclude={"id", "organisation"})
    professional = Professional.register(
        org,
        id=cmd.id or f"p-{uuid.uuid4().hex[:12]}",
        last_verified_on=deps.today(),
        **fields,
    )
    created = await deps.repo.add_professional(
        professional,
        [_pro_event(deps, professional)],
        audit_entry(
            actor=who.actor,
            action="professional.registered",
            new={"organisation": org.code, "roles": [r.value for r in cmd.roles]},
        ),
    )
    if not created:
        raise Conflict(f"professional {professional.id!r} exists already")
    deps.notify()
    return professional


async def _change_pro(
    deps: Deps,
    who: Identity | None,
    professional: Professional,
    action: str,
    details: dict[str, Any],
) -> Professional:
    expected = professional.version
    professional.version += 1
    saved = await deps.repo.save_professional(
        professional,
        expected,
        [_pro_event(deps, professional)],
        audit_entry(actor=who.actor if who else "system", action=action, new=details),
    )
    if not saved:
        raise Conflict(f"professional {professional.id!r} changed meanwhile; try again")
    deps.notify()
    return professional


async def update_professional(
    deps: Deps, who: Identity, professional_id: str, cmd: c.UpdateProfessional
) -> Professional:
    require_admin_or_self(who, professional_id)
    professional = await _get_pro(deps, professional_id)
    org = await _get_org(deps, professional.organisation)
    changes = cmd.model_dump(exclude_none=True)
    if "roles" in changes and not who.has_any(Role.REGISTER_ADMIN):
        raise Forbidden("only a register administrator may change roles")
    professional.update(org, **changes)
    return await _change_pro(
        deps,
        who,
        professional,
        "professional.updated",
        cmd.model_dump(mode="json", exclude_none=True),
    )


async def verify(deps: Deps, who: Identity, professional_id: str) -> Professional:
    require_admin_or_self(who, professional_id)
    professional = await _get_pro(deps, professional_id)
    professional.verify(deps.today())
    return await _change_pro(
        deps, who, professional, "professional.verified", {"on": deps.today().isoformat()}
    )


async def set_absence(
    deps: Deps, who: Identity, professional_id: str, cmd: c.Absence | None
) -> Professional:
    require_admin_or_self(who, professional_id)
    professional = await _get_pro(deps, professional_id)
    if cmd is None:
        professional.set_available()
    else:
        if cmd.deputy_id is not None:
            await _get_pro(deps, cmd.deputy_id)
        professional.set_absent(cmd.until, cmd.deputy_id, deps.today())
    return await _change_pro(
        deps,
        who,
        professional,
        "professional.availability",
        cmd.model_dump(mode="json") if cmd else {"available": True},
    )


async def remove_professional(
    deps: Deps, who: Identity, professional_id: str, reason: str | None
) -> None:
    """Leaving or GDPR erasure: contact data removed here and, by tombstone, everywhere."""
    require_admin_or_self(who, professional_id)
    professional = await _get_pro(deps, professional_id)
    removed = await deps.repo.remove_professional(
        professional,
        [Tombstone(REGISTER_PROFESSIONALS, professional.id)],
        audit_entry(actor=who.actor, action="professional.removed", reason=reason),
    )
    if not removed:
        raise Conflict(f"professional {professional_id!r} changed meanwhile; try again")
    deps.notify()


# Staleness ---------------------------------------------------------------------------------


async def request_verifications(deps: Deps, *, batch: int = 500) -> int:
    """Mark entries not verified for the configured months as stale and ask their owners."""
    today = deps.today()
    cutoff = _months_before(today, deps.stale_after_months)
    marked = 0
    for professional in await deps.repo.due_for_verification(cutoff, batch):
        professional.mark_stale()
        expected = professional.version
        professional.version += 1
        request = VerificationRequested(
            professional_id=professional.id,
            organisation=professional.organisation,
            last_verified_on=professional.last_verified_on,
            stale_since=today,
        )
        saved = await deps.repo.save_professional(
            professional,
            expected,
            [
                _pro_event(deps, professional),
                Outgoing(
                    REGISTER_VERIFICATIONS,
                    new_event(request, subject=professional.id, source=deps.source),
                ),
            ],
            audit_entry(
                actor="system",
                action="professional.marked_stale",
                new={"cutoff": cutoff.isoformat()},
            ),
        )
        marked += int(saved)
    if marked:
        deps.notify()
    return marked


# Search ------------------------------------------------------------------------------------


async def search(deps: Deps, query: c.SearchQuery) -> tuple[int, list[Professional]]:
    """From this replica's in-memory index once it has replayed the changelog; from the
    store before that (same filters, same order)."""
    terms = tuple(search_terms(query.q)) if query.q else ()
    skip = (query.page - 1) * query.page_size
    index = deps.repo.index
    if index is not None and index.ready:
        filters = Filters(
            organisation=query.organisation,
            roles=(query.role.value,) if query.role else (),
            life_domain=query.life_domain.value if query.life_domain else None,
            tag=query.tag,
            terms=terms,
        )
        return index.search(filters, skip=skip, limit=query.page_size)
    mongo: dict[str, Any] = {}
    if query.organisation:
        mongo["organisation"] = query.organisation
    if query.role:
        mongo["roles"] = query.role.value
    if query.life_domain:
        mongo["life_domains"] = query.life_domain.value
    if query.tag:
        mongo["tags"] = query.tag
    if terms:
        mongo["terms"] = {"$all": list(terms)}
    return await deps.repo.search(mongo, skip=skip, limit=query.page_size)


@dataclass(frozen=True)
class Contact:
    professional: Professional
    via_deputy_of: str | None = None

    @property
    def phone(self) -> str | None:
        return self.professional.phone


async def contact_for(
    deps: Deps, organisation: str, life_domain: str | None, urgent: bool
) -> list[Contact]:
    """Who to contact at ``organisation`` for ``life_domain``: available people first,
    a deputy in place of an absent one; with ``urgent`` only those with an urgent line,
    urgent line first."""
    await _get_org(deps, organisation)
    roles = (Role.MAATWERK_PROFESSIONAL.value, Role.AMBASSADOR.value)
    index = deps.repo.index
    if index is not None and index.ready:
        filters = Filters(organisation=organisation, roles=roles, life_domain=life_domain)
        _, candidates = index.search(filters, skip=0, limit=50)
    else:
        query: dict[str, Any] = {"organisation": organisation, "roles": {"$in": list(roles)}}
        if life_domain:
            query["life_domains"] = life_domain
        _, candidates = await deps.repo.search(query, skip=0, limit=50)
    today = deps.today()
    contacts: list[Contact] = []
    seen: set[str] = set()
    for professional in candidates:
        if professional.is_available(today):
            chosen = Contact(professional)
        elif professional.availability.deputy_id:
            deputy = await deps.repo.professional(professional.availability.deputy_id)
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
