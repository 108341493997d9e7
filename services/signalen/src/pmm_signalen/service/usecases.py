"""Use cases of systeemleren: async functions taking their dependencies as arguments.

Every change of a signal goes through the runtime's change loop (``changes.apply`` /
``changes.create``): state, events, audit entry and the yearly-figure delta in one atomic
write (docs/decisions/0006).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pmm_contracts.envelope import EventData
from pmm_contracts.events import cases as case_events
from pmm_contracts.events import signals as ev
from pmm_contracts.vocabulary import Role
from pmm_runtime.auth import Identity
from pmm_runtime.changes import Applied, Changes
from pmm_runtime.errors import Forbidden, NotFound, RuleViolation
from pmm_runtime.mongo import Document
from pmm_signalen.adapters.figures import YearlyFigures, pending
from pmm_signalen.adapters.repository import CaseRepository, SignalRepository
from pmm_signalen.domain import figures as fig
from pmm_signalen.domain.model import Signal
from pmm_signalen.service import commands as c
from pmm_signalen.service import report
from pmm_signalen.service.views import Candidate, ExportRow, Monitor, SignalView, view

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
    changes: Changes
    register: Organisations
    term_days: int = 42
    ensure_topics: EnsureTopics = _no_topics
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    monitor_window_days: int = 365
    monitor_threshold: int = 3


ANSWERING_ROLES = (Role.AMBASSADOR, Role.MAATWERK_PROFESSIONAL, Role.EXECUTIVE)
REPORT_ROLES = (Role.PMM_STAFF, Role.CASE_DIRECTOR)
SYSTEM = "pmm:signalen"


async def _ensure_topics_for(deps: Deps, events: Sequence[EventData]) -> None:
    """An organisation's two topics exist before the first signal is published on them."""
    for org in dict.fromkeys(e.organisation for e in events if isinstance(e, ev.SignalAssigned)):
        await deps.ensure_topics(org)


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


async def record_submission(deps: Deps, data: case_events.CaseSubmitted) -> None:
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


async def record_director(deps: Deps, data: case_events.CaseAssigned) -> None:
    """The case's regievoerder (each one it had) may follow its signals."""
    await deps.cases.add_director(data.case_id, data.case_number, data.case_director_id)


async def record_closing(deps: Deps, data: case_events.CaseClosed) -> None:
    await deps.cases.upsert(
        data.case_id,
        {
            "case_number": data.case_number,
            "outcome": data.outcome.value,
            **_closed_fields(data.closed_at, data.submitted_at, data.duration_days),
        },
    )


async def evaluate(deps: Deps, event_id: uuid.UUID, data: case_events.CaseEvaluated) -> int:
    """Keep the case's figures and make one signal per learning point; returns the number
    of signals created (0 for a redelivered evaluation: their ids derive from the event)."""
    now = deps.now()
    made = [
        Signal.from_learning_point(data, event_id, point, at=now, term_days=deps.term_days)
        for point in data.learning_points
    ]
    # The case's figures delta derives from the event alone (its id too): it is queued
    # first, in an announcement of its own, and counted once however often it comes.
    delta = fig.case_delta(data, [signal for signal, _ in made])
    carried = await deps.figures.carry(delta)
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
        None if carried else delta,
    )

    async def create(signal: Signal, events: list[EventData]) -> bool:
        events.append(signal.changed_event("created"))
        await _ensure_topics_for(deps, events)
        return await deps.changes.create(
            deps.signals,
            signal,
            events,
            actor=SYSTEM,
            action="signal.created",
            reason=f"learning point {signal.learning_point_id} of evaluation {event_id}",
            command_id=str(event_id),
        )

    # The signals are aggregates of their own: created together, their inserts (signal,
    # announcement, reminder entry) go out as one call each (group commit, decision 0010).
    return sum(await asyncio.gather(*(create(signal, events) for signal, events in made)))


# Changing a signal ------------------------------------------------------------------------


Change = Callable[[Signal], Sequence[EventData]]


async def _change(
    deps: Deps,
    signal_id: str,
    change: Change,
    *,
    actor: str,
    action: str,
    reason: str | None = None,
    command_id: str | None = None,
) -> Applied[Signal]:
    """``changes.apply`` with what every signal change adds to the same write: its
    organisations' topics exist first, and the follow-up figures it moves (a delta)."""
    read: list[Counter[str]] = [Counter()]  # follow-up counts as read, on every attempt

    def counted(signal: Signal) -> Sequence[EventData]:
        read[0] = fig.follow_up_counts(signal)
        return change(signal)

    async def topics(signal: Signal, events: Sequence[EventData]) -> None:
        await _ensure_topics_for(deps, events)

    pushed: list[bool] = [False]

    def figures(signal: Signal) -> Document:
        queued = pending(fig.signal_delta(read[0], signal, f"{signal.id}:v{signal.version + 1}"))
        pushed[0] = bool(queued)
        return queued

    done = await deps.changes.apply(
        deps.signals,
        signal_id,
        command_id,
        counted,
        actor=actor,
        action=action,
        reason=reason,
        before_write=topics,
        extra_push=figures,
    )
    if done.changed and pushed[0]:
        await deps.figures.announce(deps.signals.collection.name, signal_id)
    return done


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
    command_id: str | None = None,
) -> Signal:
    """An organisation answers; ``Forbidden`` when it is not an assignee (nothing changes)."""
    if cmd.forward_to is not None:
        await _require_registered(deps, "forward_to", cmd.forward_to)
    now = deps.now()
    done = await _change(
        deps,
        signal_id,
        lambda s: s.answer(
            organisation,
            cmd.status,
            cmd.explanation,
            cmd.forward_to,
            at=now,
            term_days=deps.term_days,
            via=via,
        ),
        actor=actor,
        action=f"signal.answered.{cmd.status.value}",
        reason=cmd.explanation,
        command_id=command_id,
    )
    return done.aggregate


async def respond_http(deps: Deps, who: Identity, signal_id: str, cmd: c.Respond) -> SignalView:
    if not who.has_any(*ANSWERING_ROLES):
        raise Forbidden("requires one of the roles: " + ", ".join(ANSWERING_ROLES))
    signal = await respond(deps, who.organisation, signal_id, cmd, actor=who.actor, via="http")
    return await _view_for(deps, who, signal)


async def on_response(
    deps: Deps, event_id: uuid.UUID, data: ev.SignalResponse, topic_org: str | None
) -> Signal:
    """A SignalResponse from an organisation's own response topic."""
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
        command_id=str(event_id),
    )


async def add_assignee(deps: Deps, who: Identity, signal_id: str, cmd: c.AddAssignee) -> SignalView:
    _require_staff(who)
    await _require_registered(deps, "organisation", cmd.organisation)
    now = deps.now()
    done = await _change(
        deps,
        signal_id,
        lambda s: [
            *s.add_assignee(cmd.organisation, at=now, term_days=deps.term_days, by=who.actor),
            s.changed_event("assigned"),
        ],
        actor=who.actor,
        action="signal.assignee_added",
        reason=cmd.reason,
    )
    return view(done.aggregate, with_case=True)


async def reassign(deps: Deps, who: Identity, signal_id: str, cmd: c.Reassign) -> SignalView:
    _require_staff(who)
    await _require_registered(deps, "to_organisation", cmd.to_organisation)
    now = deps.now()
    done = await _change(
        deps,
        signal_id,
        lambda s: [
            *s.reassign(
                cmd.from_organisation,
                cmd.to_organisation,
                at=now,
                term_days=deps.term_days,
                by=who.actor,
            ),
            s.changed_event("reassigned"),
        ],
        actor=who.actor,
        action="signal.reassigned",
        reason=cmd.reason,
    )
    return view(done.aggregate, with_case=True)


async def merge(deps: Deps, who: Identity, signal_id: str, cmd: c.Merge) -> SignalView:
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
        raise NotFound(f"no signal {cmd.into!r} to merge into", field="into")
    await _change(
        deps,
        cmd.into,
        lambda target: target.absorb(duplicate, at=now, term_days=deps.term_days, by=who.actor),
        actor=who.actor,
        action="signal.merged_from",
        reason=f"{cmd.reason} (duplicate {signal_id})",
    )
    done = await _change(
        deps,
        signal_id,
        lambda source: source.mark_merged(cmd.into),
        actor=who.actor,
        action="signal.merged",
        reason=f"{cmd.reason} (into {cmd.into})",
    )
    return view(done.aggregate, with_case=True)


async def send_reminders(deps: Deps, *, limit: int = 500) -> int:
    """Ask again every organisation silent past its term; returns the reminders sent."""
    today = deps.now().date()
    sent = 0
    for found in await deps.signals.due_before(today.isoformat(), limit):
        done = await _change(
            deps,
            found.id,
            lambda signal: signal.remind(today, deps.term_days),
            actor=SYSTEM,
            action="signal.followup_requested",
            reason=f"no answer within {deps.term_days} days",
        )
        if not done.changed:  # its index entry was stale: correct it
            await deps.signals.written(done.aggregate)
        sent += sum(isinstance(e, ev.FollowUpRequested) for e in done.events)
    return sent


# Reading ----------------------------------------------------------------------------------


async def _directed(deps: Deps, who: Identity) -> list[str]:
    """The cases a regievoerder directs or directed (none for other roles)."""
    if not who.has_any(Role.CASE_DIRECTOR):
        return []
    return await deps.cases.directed_by(who.subject)


async def _directs(deps: Deps, who: Identity, signal: Signal) -> bool:
    return who.has_any(Role.CASE_DIRECTOR) and who.subject in await deps.cases.directors(
        signal.case_id
    )


async def _view_for(deps: Deps, who: Identity, signal: Signal) -> SignalView:
    """The case reference only for PMM staff and the case's regievoerders."""
    with_case = who.has_any(Role.PMM_STAFF) or await _directs(deps, who, signal)
    return view(signal, with_case=with_case)


async def get(deps: Deps, who: Identity, signal_id: str) -> SignalView:
    """PMM staff, an organisation it is (or was) assigned to, and the case's regievoerders
    read a signal; the organisation without the case reference."""
    signal = await deps.signals.get(signal_id)
    if signal is not None:
        if who.has_any(Role.PMM_STAFF) or await _directs(deps, who, signal):
            return view(signal, with_case=True)
        if any(a.organisation == who.organisation for a in signal.assignments):
            return view(signal, with_case=False)
    raise NotFound(f"no signal {signal_id!r} you may read")


async def search(
    deps: Deps, who: Identity, query: c.ListQuery, *, skip: int, limit: int
) -> tuple[int, list[SignalView]]:
    """PMM staff see every signal; an organisation those assigned to it; a regievoerder
    also those of the cases they directed (with the case reference)."""
    directed = await _directed(deps, who)
    staff = who.has_any(Role.PMM_STAFF)
    regie = who.has_any(Role.CASE_DIRECTOR)
    if not staff and not regie and query.organisation not in (None, who.organisation):
        raise Forbidden(
            "an organisation sees only the signals assigned to it", field="organisation"
        )
    total, found = await deps.signals.search(
        readable_by=None if staff else (who.organisation, directed),
        assignee=query.organisation,
        status=query.status,
        order=query.order.value if query.order else None,
        year=query.year,
        skip=skip,
        limit=limit,
    )
    cases = set(directed)
    return total, [view(s, with_case=staff or s.case_id in cases) for s in found]


async def audit_trail(deps: Deps, who: Identity, signal_id: str) -> list[Document]:
    _require_staff(who)
    trail = await deps.signals.audit(signal_id)
    if trail is None:
        raise NotFound(f"no signal {signal_id!r}")
    return trail


# Monitor ----------------------------------------------------------------------------------


async def monitor(
    deps: Deps, who: Identity | None, *, window_days: int | None, threshold: int | None
) -> Monitor:
    """Recurring bottlenecks: the same bottleneck type (and subtype), regulation and
    organisation in at least ``threshold`` cases within the window: candidates for order-3
    (system change) attention."""
    if who is not None:
        _require_staff(who)
    window = window_days or deps.monitor_window_days
    minimum = threshold or deps.monitor_threshold
    since = (deps.now() - timedelta(days=window)).isoformat()
    candidates: list[Candidate] = []
    for key, found in (await deps.signals.recurring(since)).items():
        if len(found) >= minimum:
            btype, subtype, regulation, org = key.split("|", 3)
            candidates.append(
                Candidate(
                    bottleneck_type=btype,
                    bottleneck_subtype=subtype or None,
                    regulation_reference=regulation or None,
                    organisation=org,
                    cases=len(found),
                )
            )
    candidates.sort(key=lambda r: (-r.cases, r.organisation, r.bottleneck_type))
    return Monitor(
        window_days=window, threshold=minimum, since=since, candidates_for_order_3=candidates
    )


# Export and report ------------------------------------------------------------------------


async def export(deps: Deps, who: Identity, year: int | None) -> list[ExportRow]:
    _require_staff(who)
    return [ExportRow.of(s) for s in await deps.signals.not_merged(year)]


async def yearly_report(deps: Deps, who: Identity, year: int) -> dict[str, Any]:
    """The jaarrapportage: for PMM staff and regievoerders (it names no case)."""
    if not who.has_any(*REPORT_ROLES):
        raise Forbidden("requires one of the roles: " + ", ".join(REPORT_ROLES))
    built = await report.yearly_report(deps.figures, year)
    return await report.named(built, deps.register.organisation)
