"""Systeemleren's use cases with the real domain and the real store (no broker needed).

The register read model is the real one, filled the way its consumer fills it; the clock
is the only thing a test controls. Covers who sees what of a signal (an organisation the
lesson only; PMM staff and the case's regievoerders the case reference too), the
regievoerder's follow-up and report, the change loop's rules as signalen uses them
(one audit entry per change, a redelivery changes nothing, figures move with the change)
and the workflow's errors through the public use cases.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pmm_contracts.events.cases import (
    Bottleneck,
    CaseAssigned,
    CaseEvaluated,
    CaseOutcome,
    LearningPoint,
)
from pmm_contracts.events.register import OrganisationState
from pmm_contracts.events.signals import ResponseStatus, SignalResponse
from pmm_contracts.vocabulary import (
    BottleneckSubtype,
    BottleneckType,
    LearningOrder,
    LifeDomain,
    OrganisationKind,
    Role,
    SubmitterKind,
)
from pmm_runtime.auth import Identity
from pmm_runtime.changes import Changes
from pmm_runtime.errors import Forbidden, NotFound, NotInState, RuleViolation
from pmm_runtime.platform import Platform
from pmm_runtime.readmodel import RegisterReadModel
from pmm_signalen.adapters.figures import YearlyFigures
from pmm_signalen.adapters.repository import CaseRepository, SignalRepository
from pmm_signalen.domain.model import SignalStatus, signal_id_for
from pmm_signalen.service import commands as c
from pmm_signalen.service import usecases as uc
from pmm_signalen.service.views import CaseSignalView, SignalView
from pmm_signalen.settings import SignalenSettings

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
STAFF = Identity("staff-1", "pmm", frozenset({Role.PMM_STAFF.value}))
UWV = Identity("uwv-amb", "uwv", frozenset({Role.AMBASSADOR.value}))
SZW = Identity("szw-amb", "szw", frozenset({Role.AMBASSADOR.value}))
REGIE = Identity("regie-1", "pmm", frozenset({Role.CASE_DIRECTOR.value}))
OTHER_REGIE = Identity("regie-2", "pmm", frozenset({Role.CASE_DIRECTOR.value}))
CASE_REFERENCE = {"case_id", "case_number"}


@pytest.fixture
async def deps(make_settings: Callable[..., SignalenSettings]) -> AsyncIterator[uc.Deps]:
    settings = make_settings(SignalenSettings)
    platform = Platform(settings, configure_logs=False)
    signals = SignalRepository(platform.store("signals"))
    cases = CaseRepository(platform.db["cases"])
    figures = YearlyFigures(
        platform.db["figures"], platform.db["measures"], [signals.collection, cases.collection]
    )
    for repo in (signals, cases, figures):
        await repo.create_indexes()
    register = RegisterReadModel(platform)
    for code, kind in (
        ("uwv", OrganisationKind.EXECUTING_ORGANISATION),
        ("szw", OrganisationKind.MINISTRY),
        ("svb", OrganisationKind.EXECUTING_ORGANISATION),
    ):
        state = OrganisationState(code=code, name=code, kind=kind, is_member=True, version=1)
        await register.organisations.insert_one({"_id": code, **state.model_dump(mode="json")})
    yield uc.Deps(
        signals=signals,
        cases=cases,
        figures=figures,
        changes=Changes(source=settings.source, now=lambda: NOW),
        register=register,
        now=lambda: NOW,
    )
    await platform.mongo.close()


def point(pid: str, *orgs: str, **extra: Any) -> LearningPoint:
    values: dict[str, Any] = {
        "id": pid,
        "order": LearningOrder.THIRD,
        "bottleneck": Bottleneck(
            type=BottleneckType.LAWS_AND_REGULATIONS, subtype=BottleneckSubtype.NOT_FORESEEN
        ),
        "organisations": orgs or ("uwv",),
        "regulation_reference": "Participatiewet art. 18",
        "description": "the benefit stops when a household moves between municipalities",
    }
    values.update(extra)
    return LearningPoint(**values)


def evaluation(case: str, *points: LearningPoint, year: int = 2026) -> CaseEvaluated:
    closed = datetime(year, 11, 20, tzinfo=UTC)
    return CaseEvaluated(
        case_id=case,
        case_number=f"LMM-{year}-{abs(hash(case)) % 10_000:04d}",
        submitter_kind=SubmitterKind.MUNICIPALITY,
        submitting_organisation="gm0363",
        life_domains=(LifeDomain.INCOME,),
        bottlenecks=(Bottleneck(type=BottleneckType.COOPERATION),),
        outcome=CaseOutcome.SOLVED,
        submitted_at=closed - timedelta(days=56),
        closed_at=closed,
        duration_days=56,
        learning_points=points or (point("lp-1"),),
    )


async def evaluated(deps: uc.Deps, data: CaseEvaluated) -> list[str]:
    event_id = uuid.uuid4()
    assert await uc.evaluate(deps, event_id, data) == len(data.learning_points)
    return [signal_id_for(event_id, p.id) for p in data.learning_points]


async def directed(deps: uc.Deps, case: str, director: str, previous: str | None = None) -> None:
    number = f"LMM-2026-{abs(hash(case)) % 10_000:04d}"
    await uc.record_director(
        deps,
        CaseAssigned(
            case_id=case,
            case_number=number,
            case_director_id=director,
            previous_case_director_id=previous,
        ),
    )


def fields(view: SignalView) -> set[str]:
    return set(view.model_dump())


# Creation ---------------------------------------------------------------------------------


async def test_an_evaluation_makes_one_signal_per_point_once(deps: uc.Deps) -> None:
    data = evaluation("c-1", point("lp-1", "uwv", "szw"), point("lp-2", "szw"))
    event_id = uuid.uuid4()
    assert await uc.evaluate(deps, event_id, data) == 2
    assert await uc.evaluate(deps, event_id, data) == 0  # redelivered: nothing new
    signal = await uc.get(deps, STAFF, signal_id_for(event_id, "lp-1"))
    assert signal.organisations == ["uwv", "szw"]
    trail = await uc.audit_trail(deps, STAFF, signal.id)
    assert [e["action"] for e in trail] == ["signal.created"]
    assert trail[0]["command_id"] == str(event_id)


# Who sees what (issue 17, items 1 and 2) -------------------------------------------------


async def test_an_organisation_sees_the_lesson_without_the_case(deps: uc.Deps) -> None:
    (sid,) = await evaluated(deps, evaluation("c-1", point("lp-1", "uwv")))
    mine = await uc.get(deps, UWV, sid)
    assert type(mine) is SignalView
    assert not fields(mine) & CASE_REFERENCE
    assert "LMM-" not in mine.model_dump_json()
    total, listed = await uc.search(deps, UWV, c.ListQuery(), skip=0, limit=50)
    assert total == 1
    assert all(not fields(s) & CASE_REFERENCE for s in listed)
    answered = await uc.respond_http(deps, UWV, sid, c.Respond(status=ResponseStatus.RECEIVED))
    assert not fields(answered) & CASE_REFERENCE
    rows = await uc.export(deps, STAFF, None)
    assert rows
    assert all(not set(r.model_dump()) & CASE_REFERENCE for r in rows)
    staff = await uc.get(deps, STAFF, sid)
    assert isinstance(staff, CaseSignalView)
    assert staff.case_id == "c-1"
    with pytest.raises(NotFound):  # not assigned to szw: not even that it exists
        await uc.get(deps, SZW, sid)


async def test_a_regievoerder_follows_the_signals_of_the_cases_they_directed(
    deps: uc.Deps,
) -> None:
    await directed(deps, "c-1", REGIE.subject)
    await directed(deps, "c-2", OTHER_REGIE.subject)
    (mine,) = await evaluated(deps, evaluation("c-1", point("lp-1", "uwv")))
    (theirs,) = await evaluated(deps, evaluation("c-2", point("lp-1", "szw")))

    total, listed = await uc.search(deps, REGIE, c.ListQuery(), skip=0, limit=50)
    assert (total, [s.id for s in listed]) == (1, [mine])
    assert isinstance(listed[0], CaseSignalView)
    assert listed[0].case_id == "c-1"
    seen = await uc.get(deps, REGIE, mine)
    assert isinstance(seen, CaseSignalView)
    with pytest.raises(NotFound):
        await uc.get(deps, REGIE, theirs)

    # the follow-up shows as it happens
    await uc.respond_http(
        deps,
        UWV,
        mine,
        c.Respond(status=ResponseStatus.MEASURE_TAKEN, explanation="werkinstructie aangepast"),
    )
    seen = await uc.get(deps, REGIE, mine)
    assert seen.assignments[0].status.value == "measure_taken"
    assert seen.assignments[0].answers[0].explanation == "werkinstructie aangepast"
    _, closed = await uc.search(
        deps, REGIE, c.ListQuery(status=SignalStatus.CLOSED), skip=0, limit=50
    )
    assert [s.id for s in closed] == [mine]
    _, to_szw = await uc.search(deps, REGIE, c.ListQuery(organisation="szw"), skip=0, limit=50)
    assert to_szw == []  # filters narrow what they may see, never widen it

    # handed over: the new regievoerder sees the case's signals too, the first one still
    await directed(deps, "c-1", OTHER_REGIE.subject, previous=REGIE.subject)
    total, _ = await uc.search(deps, OTHER_REGIE, c.ListQuery(), skip=0, limit=50)
    assert total == 2
    assert (await uc.get(deps, REGIE, mine)).id == mine

    # the role matters, not only the person's id
    stranger = Identity(REGIE.subject, "pmm", frozenset({Role.MAATWERK_PROFESSIONAL.value}))
    with pytest.raises(NotFound):
        await uc.get(deps, stranger, mine)


async def test_the_yearly_report_is_for_staff_and_regievoerders(deps: uc.Deps) -> None:
    await evaluated(deps, evaluation("c-1", point("lp-1", "uwv")))
    await deps.figures.run_once()
    for reader in (STAFF, REGIE):
        report = await uc.yearly_report(deps, reader, 2026)
        assert report["cases_closed"] == 1
    with pytest.raises(Forbidden):
        await uc.yearly_report(deps, UWV, 2026)


async def test_the_report_counts_the_learning_points_bottlenecks(deps: uc.Deps) -> None:
    ict = Bottleneck(type=BottleneckType.ICT)
    unclear = Bottleneck(
        type=BottleneckType.LAWS_AND_REGULATIONS,
        subtype=BottleneckSubtype.INTERPRETATION_UNCLEAR,
    )
    await evaluated(
        deps,
        evaluation(
            "c-1",
            point("lp-1", "uwv"),
            point("lp-2", "uwv", bottleneck=ict),
            point("lp-3", "szw", bottleneck=unclear),
            year=2031,
        ),
    )
    assert await deps.figures.run_once() == 1
    report = await uc.yearly_report(deps, STAFF, 2031)
    intake = {r["key"]: r["n"] for r in report["bottleneck_types"]}
    points = {r["key"]: r["n"] for r in report["learning_point_bottleneck_types"]}
    subtypes = {r["key"]: r["n"] for r in report["learning_point_bottleneck_subtypes"]}
    assert intake["cooperation"] == 1  # the case's intake bottleneck
    assert intake["laws_and_regulations"] == 0
    assert points["laws_and_regulations"] == 2
    assert points["ict"] == 1
    assert subtypes["not_foreseen"] == 1
    assert subtypes["interpretation_unclear"] == 1
    follow_up = {r["key"]: r["n"] for r in report["follow_up"]}
    assert follow_up["assigned"] == 3  # each new signal's assignment, counted once


# Changes through the change loop ---------------------------------------------------------


async def test_a_change_writes_one_audit_entry_and_moves_the_figures(deps: uc.Deps) -> None:
    (sid,) = await evaluated(deps, evaluation("c-1", point("lp-1", "uwv"), year=2032))
    await deps.figures.run_once()
    done = await uc.respond_http(
        deps,
        UWV,
        sid,
        c.Respond(status=ResponseStatus.NO_ACTION, explanation="outside our mandate"),
    )
    assert done.version == 2
    assert done.status.value == "closed"
    trail = await uc.audit_trail(deps, STAFF, sid)
    assert [e["action"] for e in trail] == ["signal.created", "signal.answered.no_action"]
    assert trail[1]["actor"] == UWV.actor
    assert trail[1]["reason"] == "outside our mandate"
    assert trail[1]["old"]["status"] == "open"
    assert trail[1]["new"]["status"] == "closed"
    assert await deps.figures.run_once() == 1
    counts = await deps.figures.counts(2032)
    assert counts["follow_up:uwv:assigned"] == 0
    assert counts["follow_up:uwv:no_action"] == 1


async def test_a_redelivered_response_changes_nothing(deps: uc.Deps) -> None:
    (sid,) = await evaluated(deps, evaluation("c-1", point("lp-1", "uwv")))
    event_id = uuid.uuid4()
    response = SignalResponse(signal_id=sid, organisation="uwv", status=ResponseStatus.RECEIVED)
    first = await uc.on_response(deps, event_id, response, "uwv")
    again = await uc.on_response(deps, event_id, response, "uwv")
    assert first.version == again.version == 2
    assert len(again.assignments[0].answers) == 1
    with pytest.raises(Forbidden):  # the topic names the speaker
        await uc.on_response(deps, uuid.uuid4(), response, "szw")


async def test_the_workflow_through_the_use_cases(deps: uc.Deps) -> None:
    (sid,) = await evaluated(deps, evaluation("c-1", point("lp-1", "uwv")))
    with pytest.raises(RuleViolation) as rule:
        await uc.respond_http(deps, UWV, sid, c.Respond(status=ResponseStatus.MEASURE_TAKEN))
    assert rule.value.field == "explanation"
    with pytest.raises(RuleViolation) as rule:
        await uc.respond_http(
            deps, UWV, sid, c.Respond(status=ResponseStatus.FORWARDED, forward_to="zzz")
        )
    assert rule.value.field == "forward_to"  # not in the register
    await uc.respond_http(deps, UWV, sid, c.Respond(status=ResponseStatus.IN_PROGRESS))
    with pytest.raises(NotInState) as state:
        await uc.respond_http(deps, UWV, sid, c.Respond(status=ResponseStatus.RECEIVED))
    assert state.value.problem()["current_status"] == "in_progress"
    assert state.value.problem()["allowed"] == [
        "forwarded",
        "measure_taken",
        "no_action",
        "withdrawn",
    ]
    with pytest.raises(Forbidden):
        await uc.respond_http(deps, SZW, sid, c.Respond(status=ResponseStatus.RECEIVED))
    with pytest.raises(Forbidden):
        await uc.reassign(
            deps, UWV, sid, c.Reassign(from_organisation="uwv", to_organisation="svb", reason="x")
        )
    moved = await uc.reassign(
        deps, STAFF, sid, c.Reassign(from_organisation="uwv", to_organisation="svb", reason="SVB")
    )
    assert moved.organisations == ["svb"]
    assert [a.status.value for a in moved.assignments] == ["withdrawn", "assigned"]


async def test_merging_and_a_merged_signal(deps: uc.Deps) -> None:
    first, duplicate = await evaluated(
        deps, evaluation("c-1", point("lp-1", "uwv"), point("lp-2", "uwv", "szw"))
    )
    with pytest.raises(NotFound) as missing:
        await uc.merge(deps, STAFF, duplicate, c.Merge(into="nope", reason="same"))
    assert missing.value.field == "into"
    merged = await uc.merge(deps, STAFF, duplicate, c.Merge(into=first, reason="same lesson"))
    assert merged.merged_into == first
    with pytest.raises(NotInState):  # merged already: a second merge is refused
        await uc.merge(deps, STAFF, duplicate, c.Merge(into=first, reason="same lesson"))
    target = await uc.get(deps, STAFF, first)
    assert target.merged_from == [duplicate]
    assert target.organisations == ["uwv", "szw"]
    with pytest.raises(NotInState) as state:
        await uc.respond_http(deps, UWV, duplicate, c.Respond(status=ResponseStatus.RECEIVED))
    assert state.value.problem()["merged_into"] == first


async def test_silent_organisations_are_asked_again_once_per_term(deps: uc.Deps) -> None:
    (sid,) = await evaluated(deps, evaluation("c-1", point("lp-1", "uwv", "szw")))
    await uc.respond_http(
        deps, SZW, sid, c.Respond(status=ResponseStatus.NO_ACTION, explanation="not ours")
    )
    assert await uc.send_reminders(deps) == 0
    late = replace(deps, now=lambda: NOW + timedelta(days=deps.term_days + 1))
    assert await uc.send_reminders(late) == 1
    assert await uc.send_reminders(late) == 0
    signal = await uc.get(deps, STAFF, sid)
    assert [a.reminders for a in signal.assignments] == [1, 0]
