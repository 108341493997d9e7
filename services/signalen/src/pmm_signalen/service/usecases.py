"""Use cases of systeemleren: async functions taking their dependencies as arguments."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from pmm_contracts import new_event
from pmm_contracts.envelope import CloudEvent, EventData
from pmm_contracts.events import cases as case_events
from pmm_contracts.events import signals as ev
from pmm_contracts.topics import SIGNALEN_SIGNALS, signals_assigned_topic
from pmm_contracts.vocabulary import Role
from pmm_runtime.auth import Identity
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import Outgoing, audit_entry
from pmm_signalen.adapters.figures import YearlyFigures
from pmm_signalen.adapters.repository import CaseRepository, SignalRepository
from pmm_signalen.domain import figures as fig
from pmm_signalen.domain.model import RuleViolation, Signal, SignalError, SignalStatus
from pmm_signalen.service import commands as c


class NotFound(SignalError):
    """HTTP 404."""


class Forbidden(SignalError):
    """HTTP 403."""


class Conflict(SignalError):
    """The signal kept changing meanwhile (HTTP 409); try again."""


EnsureTopics = Callable[[str], Awaitable[None]]


class Organisations(Protocol):
    """What signalen needs of the register read model (``RegisterReadModel``)."""

    async def organisation(self, code: str) -> Document | None: ...


async def _no_topics(org: str) -> None:
    return None


@dataclass(frozen=True)
class Deps:
    signals: SignalRepository
    cases: CaseRepository
    figures: YearlyFigures
    source: str
    register: Organisations
    term_days: int = 42
    ensure_topics: EnsureTopics = _no_topics
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    notify: Callable[[], None] = lambda: None
    monitor_window_days: int = 365
    monitor_threshold: int = 3


ANSWERING_ROLES = (Role.AMBASSADOR, Role.MAATWERK_PROFESSIONAL, Role.EXECUTIVE)
SYSTEM = "pmm:signalen"


# Events -----------------------------------------------------------------------------------


def _outgoing(deps: Deps, signal_id: str, data: EventData, event_id: uuid.UUID | None) -> Outgoing:
    if isinstance(data, ev.SignalAssigned | ev.FollowUpRequested):
        topic = signals_assigned_topic(data.organisation)
    else:
        topic = SIGNALEN_SIGNALS
    return Outgoing(
        topic, new_event(data, subject=signal_id, source=deps.source, event_id=event_id)
    )


def _envelopes(
    deps: Deps, signal_id: str, events: list[EventData], caused_by: str | None
) -> list[Outgoing]:
    """Ids derived from the causing event when there is one, so a replay repeats them."""
    result = []
    for n, data in enumerate(events):
        event_id = uuid.uuid5(uuid.UUID(caused_by), f"{signal_id}:{n}") if caused_by else None
        result.append(_outgoing(deps, signal_id, data, event_id))
    return result


async def _ensure_topics_for(deps: Deps, events: list[EventData]) -> None:
    """An organisation's two topics exist before the first signal is published on them."""
    for org in dict.fromkeys(e.organisation for e in events if isinstance(e, ev.SignalAssigned)):
        await deps.ensure_topics(org)


def _snapshot(signal: Signal) -> dict[str, Any]:
    return {
        "status": signal.status.value,
        "assignments": {a.organisation: a.status.value for a in signal.assignments},
    }


# Cases from the Loket ---------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _closed_fields(closed_at: datetime, submitted_at: datetime, duration_days: int) -> Document:
    return {
        "submitted_at": _iso(submitted_at),
        "closed_at": _iso(closed_at),
        "closed_year": closed_at.year,
        "closed_month": f"{closed_at.year:04d}-{closed_at.month:02d}",
        "duration_days": duration_days,
    }


async def on_case_event(deps: Deps, event: CloudEvent[Any]) -> int:
    """Keep what the report needs of a case; an evaluation creates the signals.

    Returns the number of signals created (0 for other events and for a replay).
    """
    data = event.data
    if isinstance(data, case_events.CaseSubmitted):
        await deps.cases.upsert(
            data.case_id,
            {
                "case_number": data.case_number,
                "submitter_kind": data.submitter_kind.value,
                "submitting_organisation": data.submitting_organisation,
                "life_domains": [d.value for d in data.life_domains],
                "bottleneck_types": sorted({b.type.value for b in data.bottlenecks}),
                "submitted_at": _iso(data.submitted_at),
            },
        )
        return 0
    if isinstance(data, case_events.CaseClosed):
        await deps.cases.upsert(
            data.case_id,
            {
                "case_number": data.case_number,
                "outcome": data.outcome.value,
                **_closed_fields(data.closed_at, data.submitted_at, data.duration_days),
            },
        )
        return 0
    if isinstance(data, case_events.CaseEvaluated):
        return await evaluate(deps, event)
    return 0


async def evaluate(deps: Deps, event: CloudEvent[Any]) -> int:
    data: case_events.CaseEvaluated = event.data
    await deps.cases.upsert(
        data.case_id,
        {
            "case_number": data.case_number,
            "submitter_kind": data.submitter_kind.value,
            "submitting_organisation": data.submitting_organisation,
            "life_domains": sorted({d.value for d in data.life_domains}),
            "bottleneck_types": sorted({b.type.value for b in data.bottlenecks}),
            "outcome": data.outcome.value,
            "evaluated": True,
            "learning_points": len(data.learning_points),
            **_closed_fields(data.closed_at, data.submitted_at, data.duration_days),
        },
        fig.case_delta(data),
    )
    created = 0
    now = deps.now()
    for point in data.learning_points:
        signal, events = Signal.from_learning_point(
            data, event.id, point, at=now, term_days=deps.term_days
        )
        events.append(signal.changed_event("created"))
        await _ensure_topics_for(deps, events)
        added = await deps.signals.add(
            signal,
            _envelopes(deps, signal.id, events, str(signal.id)),
            audit_entry(
                actor=SYSTEM,
                action="signal.created",
                reason=f"learning point {point.id} of evaluation {event.id}",
                new=_snapshot(signal),
                at=now,
            ),
            caused_by=str(event.id),
            figures=fig.signal_delta(fig.follow_up_counts(None), signal, f"{signal.id}:v1"),
        )
        created += int(added)
    if created:
        deps.notify()
    return created


# Changing a signal ------------------------------------------------------------------------


Change = Callable[[Signal], list[EventData]]


async def _change(
    deps: Deps,
    signal_id: str,
    *,
    actor: str,
    action: str,
    reason: str | None,
    change: Change,
    caused_by: str | None = None,
    attempts: int = 5,
) -> Signal:
    """Read, apply ``change`` (pure), write state + events + audit atomically; retry on a
    concurrent write. A redelivered causing event changes nothing."""
    for _ in range(attempts):
        signal = await deps.signals.get(signal_id)
        if signal is None:
            raise NotFound(f"no signal {signal_id!r}")
        if caused_by and await deps.signals.is_applied(signal_id, caused_by):
            return signal
        before = _snapshot(signal)
        counted = fig.follow_up_counts(signal)
        original = signal.model_dump()
        events = change(signal)
        if not events and signal.model_dump() == original:
            return signal  # nothing to do (e.g. answered since the reminder scan read it)
        await _ensure_topics_for(deps, events)
        expected = signal.version
        saved = await deps.signals.save(
            signal,
            expected,
            _envelopes(deps, signal.id, events, caused_by),
            audit_entry(
                actor=actor, action=action, reason=reason, old=before, new=_snapshot(signal)
            ),
            caused_by=caused_by,
            figures=fig.signal_delta(counted, signal, f"{signal.id}:v{expected + 1}"),
        )
        if saved:
            signal.version = expected + 1
            deps.notify()
            return signal
    raise Conflict(f"signal {signal_id!r} kept changing meanwhile; try again")


def _require_staff(who: Identity) -> None:
    if not who.has_any(Role.PMM_STAFF):
        raise Forbidden("requires the pmm_staff role")


async def _require_registered(deps: Deps, field: str, code: str) -> None:
    """A signal is only ever assigned to an organisation the register knows (staff changes
    and forwards; the Loket checked the organisations of its learning points)."""
    if await deps.register.organisation(code) is None:
        raise RuleViolation(field, f"{code!r} is not an organisation in the register")


async def respond(
    deps: Deps,
    organisation: str,
    signal_id: str,
    cmd: c.Respond,
    *,
    actor: str,
    via: str,
    caused_by: str | None = None,
) -> Signal:
    """An organisation answers; ``NotAnAssignee`` when it is not one (nothing changes)."""
    if cmd.forward_to is not None:
        await _require_registered(deps, "forward_to", cmd.forward_to)
    now = deps.now()
    return await _change(
        deps,
        signal_id,
        actor=actor,
        action=f"signal.answered.{cmd.status.value}",
        reason=cmd.explanation,
        caused_by=caused_by,
        change=lambda s: s.answer(
            organisation,
            cmd.status,
            cmd.explanation,
            cmd.forward_to,
            at=now,
            term_days=deps.term_days,
            via=via,
        ),
    )


async def respond_http(deps: Deps, who: Identity, signal_id: str, cmd: c.Respond) -> Signal:
    if not who.has_any(*ANSWERING_ROLES):
        raise Forbidden("requires one of the roles: " + ", ".join(ANSWERING_ROLES))
    return await respond(deps, who.organisation, signal_id, cmd, actor=who.actor, via="http")


async def on_response(deps: Deps, event: CloudEvent[Any], topic_org: str | None) -> Signal:
    """A SignalResponse from an organisation's own response topic."""
    data: ev.SignalResponse = event.data
    if topic_org is not None and topic_org != data.organisation:
        raise Forbidden(
            f"an answer for {data.organisation} arrived on the response topic of {topic_org}"
        )
    cmd = c.Respond(status=data.status, explanation=data.explanation, forward_to=data.forward_to)
    return await respond(
        deps,
        data.organisation,
        data.signal_id,
        cmd,
        actor=f"{data.organisation}:consumer",
        via="kafka",
        caused_by=str(event.id),
    )


async def add_assignee(deps: Deps, who: Identity, signal_id: str, cmd: c.AddAssignee) -> Signal:
    _require_staff(who)
    await _require_registered(deps, "organisation", cmd.organisation)
    now = deps.now()
    return await _change(
        deps,
        signal_id,
        actor=who.actor,
        action="signal.assignee_added",
        reason=cmd.reason,
        change=lambda s: [
            *s.add_assignee(cmd.organisation, at=now, term_days=deps.term_days, by=who.actor),
            s.changed_event("assigned"),
        ],
    )


async def reassign(deps: Deps, who: Identity, signal_id: str, cmd: c.Reassign) -> Signal:
    _require_staff(who)
    await _require_registered(deps, "to_organisation", cmd.to_organisation)
    now = deps.now()
    return await _change(
        deps,
        signal_id,
        actor=who.actor,
        action="signal.reassigned",
        reason=cmd.reason,
        change=lambda s: [
            *s.reassign(
                cmd.from_organisation,
                cmd.to_organisation,
                at=now,
                term_days=deps.term_days,
                by=who.actor,
            ),
            s.changed_event("reassigned"),
        ],
    )


async def merge(deps: Deps, who: Identity, signal_id: str, cmd: c.Merge) -> Signal:
    """Merge duplicate ``signal_id`` into ``cmd.into``.

    Two documents, no transaction: the target is written first (its new assignments and
    ``merged_from``), then the duplicate is marked merged. A crash in between leaves the
    duplicate open, and repeating the merge completes it without doubling anything.
    """
    _require_staff(who)
    now = deps.now()
    duplicate = await deps.signals.get(signal_id)
    if duplicate is None:
        raise NotFound(f"no signal {signal_id!r}")
    if await deps.signals.get(cmd.into) is None:
        raise NotFound(f"no signal {cmd.into!r} to merge into")

    await _change(
        deps,
        cmd.into,
        actor=who.actor,
        action="signal.merged_from",
        reason=f"{cmd.reason} (duplicate {signal_id})",
        change=lambda target: target.absorb(
            duplicate, at=now, term_days=deps.term_days, by=who.actor
        ),
    )
    return await _change(
        deps,
        signal_id,
        actor=who.actor,
        action="signal.merged",
        reason=f"{cmd.reason} (into {cmd.into})",
        change=lambda source: source.mark_merged(cmd.into),
    )


async def send_reminders(deps: Deps, *, limit: int = 500) -> int:
    """Ask again every organisation silent past its term; returns the reminders sent."""
    today = deps.now().date()
    sent = 0
    for found in await deps.signals.due_before(today.isoformat(), limit):
        counter: list[int] = []

        def remind(signal: Signal, counter: list[int] = counter) -> list[EventData]:
            events = signal.remind(today, deps.term_days)
            counter[:] = [len(events)]
            return events

        await _change(
            deps,
            found.id,
            actor=SYSTEM,
            action="signal.followup_requested",
            reason=f"no answer within {deps.term_days} days",
            change=remind,
        )
        sent += counter[0] if counter else 0
    return sent


# Reading ----------------------------------------------------------------------------------


def _may_read(who: Identity, signal: Signal) -> bool:
    return who.has_any(Role.PMM_STAFF) or any(
        a.organisation == who.organisation for a in signal.assignments
    )


async def get(deps: Deps, who: Identity, signal_id: str) -> Signal:
    signal = await deps.signals.get(signal_id)
    if signal is None or not _may_read(who, signal):
        raise NotFound(f"no signal {signal_id!r} you may read")
    return signal


async def search(deps: Deps, who: Identity, query: c.ListQuery) -> tuple[int, list[Signal]]:
    """PMM staff see every signal; an organisation sees those assigned to it."""
    mongo: Document = {}
    if not who.has_any(Role.PMM_STAFF):
        if query.organisation and query.organisation != who.organisation:
            raise Forbidden("an organisation sees only the signals assigned to it")
        mongo["assignments.organisation"] = who.organisation
    elif query.organisation:
        mongo["assignments.organisation"] = query.organisation
    if query.status:
        mongo["status"] = query.status.value
    if query.order:
        mongo["order"] = query.order.value
    if query.year:
        mongo["year"] = query.year
    return await deps.signals.find(
        mongo, skip=(query.page - 1) * query.page_size, limit=query.page_size
    )


async def audit_trail(deps: Deps, who: Identity, signal_id: str) -> list[Document]:
    _require_staff(who)
    trail = await deps.signals.audit(signal_id)
    if trail is None:
        raise NotFound(f"no signal {signal_id!r}")
    return trail


# Monitor ----------------------------------------------------------------------------------


async def monitor(
    deps: Deps, who: Identity | None, *, window_days: int | None, threshold: int | None
) -> dict[str, Any]:
    """Recurring bottlenecks: the same bottleneck type (and subtype), regulation and
    organisation in at least ``threshold`` cases within the window: candidates for order-3
    (system change) attention."""
    if who is not None:
        _require_staff(who)
    window = window_days or deps.monitor_window_days
    minimum = threshold or deps.monitor_threshold
    since = (deps.now() - timedelta(days=window)).isoformat()
    groups = await deps.signals.aggregate(
        [
            {"$match": {"created_at": {"$gte": since}}},
            {"$unwind": "$monitor_keys"},
            {"$group": {"_id": "$monitor_keys", "n": {"$sum": 1}}},
        ]
    )
    cases: dict[str, set[str]] = {}
    for row in groups:
        key, _, case_id = str(row["_id"]).partition("#")
        cases.setdefault(key, set()).add(case_id)
    candidates: list[dict[str, Any]] = []
    for key, found in cases.items():
        if len(found) >= minimum:
            btype, subtype, regulation, org = key.split("|", 3)
            candidates.append(
                {
                    "bottleneck_type": btype,
                    "bottleneck_subtype": subtype or None,
                    "regulation_reference": regulation or None,
                    "organisation": org,
                    "cases": len(found),
                }
            )
    candidates.sort(
        key=lambda r: (-int(r["cases"]), str(r["organisation"]), str(r["bottleneck_type"]))
    )
    return {
        "window_days": window,
        "threshold": minimum,
        "since": since,
        "candidates_for_order_3": candidates,
    }


# Export -----------------------------------------------------------------------------------


EXPORT_FIELDS = (
    "signal_id",
    "year",
    "order",
    "bottleneck_type",
    "bottleneck_subtype",
    "life_domains",
    "regulation_reference",
    "description",
    "organisations",
    "status",
    "follow_up",
    "created_at",
)


def export_row(signal: Signal) -> dict[str, Any]:
    """An anonymised signal for other initiatives that collect bottlenecks: no case."""
    return {
        "signal_id": signal.id,
        "year": signal.year,
        "order": signal.order.value,
        "bottleneck_type": signal.bottleneck.type.value,
        "bottleneck_subtype": signal.bottleneck.subtype.value
        if signal.bottleneck.subtype
        else None,
        "life_domains": [d.value for d in signal.life_domains],
        "regulation_reference": signal.regulation_reference,
        "description": signal.description,
        "organisations": list(dict.fromkeys(signal.organisations)),
        "status": signal.status.value,
        "follow_up": {a.organisation: a.status.value for a in signal.assignments},
        "created_at": signal.created_at.isoformat(),
    }


async def export(deps: Deps, who: Identity, year: int | None) -> list[dict[str, Any]]:
    _require_staff(who)
    query: Document = {"status": {"$ne": SignalStatus.MERGED.value}}
    if year:
        query["year"] = year
    _, found = await deps.signals.find(query, limit=0)
    return [export_row(s) for s in found]


def today(deps: Deps) -> date:
    return deps.now().date()
