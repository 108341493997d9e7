"""Signals from evaluations, answers over HTTP and Kafka, PMM staff's changes, reminders,
audit trail, monitor, export and the yearly report: against the real broker and store."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pmm_contracts import new_event
from pmm_contracts.events.cases import CaseAssigned
from pmm_contracts.events.signals import ResponseStatus, SignalResponse
from pmm_contracts.topics import (
    dead_letter_topic,
    signals_responses_topic,
)
from pmm_contracts.vocabulary import BottleneckType, LearningOrder, Role, SubmitterKind
from pmm_runtime.testing import bearer, eventually, read_topic
from pmm_signalen.__main__ import write_report
from pmm_signalen.domain.model import signal_id_for
from pmm_signalen.service import usecases as uc

from .conftest import LOKET, World, learning_point, publish

pytestmark = pytest.mark.integration

ORG = "urn:nld:oin:00000000000000000000:systeem:signalen-consumer"


async def test_an_evaluation_yields_one_anonymised_signal_per_point_and_per_org_topic(
    world: World,
) -> None:
    a, b = world.org_a, world.org_b
    events = world.case_events(
        (learning_point("lp1", (a,)), learning_point("lp2", (a, b), order=LearningOrder.FIRST))
    )
    await world.send(*events)
    await world.send(events[2])  # a redelivered evaluation changes nothing
    from_a = await world.assigned(a, 2, settle_s=2.0)
    from_b = await world.assigned(b, 1, settle_s=1.0)
    assert len(from_a) == 2
    assert len(from_b) == 1
    assert {e["type"] for e in from_a} == {"nl.maatwerk.signal.assigned"}
    assert all(e["data"]["organisation"] == a for e in from_a)
    for event in from_a + from_b:  # no case file, no case reference
        text = json.dumps(event)
        assert events[2].data.case_id not in text
        assert events[2].data.case_number not in text
    signal = await world.signal(from_b[0]["subject"])
    assert signal["order"] == "1"
    assert signal["organisations"] == [a, b]
    listed = (await world.client.get("/signals", headers=world.org(b))).json()
    assert [s["id"] for s in listed["items"]] == [signal["id"]]  # b sees only its own


async def test_answers_over_http_update_the_signal_and_are_audited(world: World) -> None:
    a, b = world.org_a, world.org_b
    (sid,) = await world.evaluate(learning_point("lp1", (a,)))
    url = f"/signals/{sid}/responses"

    r = await world.client.post(url, json={"status": "received"}, headers=world.org(a))
    assert r.status_code == 200, r.text
    assert r.json()["assignments"][0]["status"] == "received"

    # an organisation that is not an assignee: refused, nothing changes
    before = await world.client.get(f"/signals/{sid}/audit", headers=world.staff())
    r = await world.client.post(
        url, json={"status": "measure_taken", "explanation": "x"}, headers=world.org(b)
    )
    assert r.status_code == 403
    after = await world.client.get(f"/signals/{sid}/audit", headers=world.staff())
    assert after.json() == before.json()
    assert (await world.client.get(f"/signals/{sid}", headers=world.org(b))).status_code == 404

    # bad input: 422 naming the field
    r = await world.client.post(url, json={"status": "done"}, headers=world.org(a))
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "status"
    r = await world.client.post(url, json={"status": "measure_taken"}, headers=world.org(a))
    assert r.status_code == 422
    assert r.json()["field"] == "explanation"
    assert r.json()["type"] == "urn:nl:pmm:problem:rule-violation"
    r = await world.client.post(
        url,
        json={"status": "no_action", "explanation": "client 123456782 moved"},  # a BSN
        headers=world.org(a),
    )
    assert r.status_code == 422
    assert "explanation" in r.json()["detail"]
    r = await world.client.post(url, json={"status": "received"}, headers=world.org(a, "x"))
    assert r.status_code == 403

    r = await world.client.post(
        url,
        json={"status": "measure_taken", "explanation": "werkinstructie aangepast"},
        headers=world.org(a),
    )
    assert r.status_code == 200
    assert r.json()["status"] == "closed"

    # a concluded assignment cannot move again: 409 naming the allowed next states
    r = await world.client.post(url, json={"status": "in_progress"}, headers=world.org(a))
    assert r.status_code == 409
    assert r.json()["allowed"] == []
    assert r.json()["current_status"] == "measure_taken"
    assert r.json()["type"] == "urn:nl:pmm:problem:not-in-state"
    trail = (await world.client.get(f"/signals/{sid}/audit", headers=world.staff())).json()
    assert [e["action"] for e in trail] == [
        "signal.created",
        "signal.answered.received",
        "signal.answered.measure_taken",
    ]
    assert trail[1]["actor"] == f"{a}:amb-{a}"
    # old and new of what changed (ADR 0006): the assignment as it was and as it is now
    assert [x["status"] for x in trail[2]["old"]["assignments"]] == ["received"]
    assert [x["status"] for x in trail[2]["new"]["assignments"]] == ["measure_taken"]
    assert trail[2]["new"]["status"] == "closed"
    assert (
        await world.client.get(f"/signals/{sid}/audit", headers=world.org(a))
    ).status_code == 403


async def test_answers_on_the_response_topic_and_a_forward(world: World) -> None:
    a, b = world.org_a, world.org_b
    (sid,) = await world.evaluate(learning_point("lp1", (a,)))

    def response(org: str, status: ResponseStatus, **extra: Any) -> Any:
        data = SignalResponse(signal_id=sid, organisation=org, status=status, **extra)
        return new_event(data, subject=sid, source=ORG)

    # from b, not an assignee: dead-lettered, nothing changes; and a's answer on b's topic
    # is refused too (ACLs aside, the topic names the speaker)
    stranger = response(b, ResponseStatus.NO_ACTION, explanation="not ours")
    wrong_topic = response(a, ResponseStatus.RECEIVED)
    await publish(world.bootstrap, signals_responses_topic(b), stranger, wrong_topic)
    dlq = await read_topic(world.bootstrap, dead_letter_topic(signals_responses_topic(b)), count=2)
    errors = {json.loads(r.value)["id"]: dict(r.headers)["x-dlq-error"].decode() for r in dlq}
    assert f"not assigned to {b}" in errors[str(stranger.id)]
    assert "response topic" in errors[str(wrong_topic.id)]
    untouched = await world.signal(sid)
    assert untouched["assignments"][0]["status"] == "assigned"

    forward = response(a, ResponseStatus.FORWARDED, forward_to=b)
    await publish(world.bootstrap, signals_responses_topic(a), forward, forward)  # twice
    signal = await world.signal(sid, lambda s: s["organisations"] == [b])
    assert [x["status"] for x in signal["assignments"]] == ["forwarded", "assigned"]
    assert len(signal["assignments"][0]["answers"]) == 1  # the redelivery changed nothing
    got = await world.assigned(b, 1, settle_s=1.0)
    assert [e["data"]["signal_id"] for e in got] == [sid]
    trail = (await world.client.get(f"/signals/{sid}/audit", headers=world.staff())).json()
    assert [e["action"] for e in trail] == ["signal.created", "signal.answered.forwarded"]


async def test_a_signal_goes_only_to_organisations_the_register_knows(world: World) -> None:
    a = world.org_a
    unknown = f"z{world.unique[:8]}"  # well-formed, but never registered
    (sid,) = await world.evaluate(learning_point("lp1", (a,)))
    staff = world.staff()
    attempts = [
        ("reassign", {"from_organisation": a, "to_organisation": unknown, "reason": "x"}),
        ("assignees", {"organisation": unknown, "reason": "x"}),
    ]
    for path, body in attempts:
        r = await world.client.post(f"/signals/{sid}/{path}", json=body, headers=staff)
        assert r.status_code == 422, r.text
        assert r.json()["field"] in body
        assert unknown in r.json()["errors"][0]["message"]
    r = await world.client.post(
        f"/signals/{sid}/responses",
        json={"status": "forwarded", "forward_to": unknown},
        headers=world.org(a),
    )
    assert r.status_code == 422
    assert r.json()["field"] == "forward_to"
    # over Kafka the same forward is dead-lettered
    forward = new_event(
        SignalResponse(
            signal_id=sid, organisation=a, status=ResponseStatus.FORWARDED, forward_to=unknown
        ),
        subject=sid,
        source=ORG,
    )
    await publish(world.bootstrap, signals_responses_topic(a), forward)
    (dead,) = await read_topic(
        world.bootstrap, dead_letter_topic(signals_responses_topic(a)), count=1
    )
    assert json.loads(dead.value)["id"] == str(forward.id)
    assert b"not an organisation in the register" in dict(dead.headers)["x-dlq-error"]
    signal = await world.signal(sid)
    assert signal["organisations"] == [a]
    assert signal["assignments"][0]["status"] == "assigned"
    trail = (await world.client.get(f"/signals/{sid}/audit", headers=staff)).json()
    assert [e["action"] for e in trail] == ["signal.created"]


async def test_pmm_staff_reassign_add_and_merge(world: World) -> None:
    a, b = world.org_a, world.org_b
    first, duplicate = await world.evaluate(
        learning_point("lp1", (a,)), learning_point("lp2", (a, b))
    )
    staff = world.staff()
    r = await world.client.post(
        f"/signals/{first}/reassign",
        json={"from_organisation": a, "to_organisation": b, "reason": "SZW owns this rule"},
        headers=world.org(a),
    )
    assert r.status_code == 403
    r = await world.client.post(
        f"/signals/{first}/reassign",
        json={"from_organisation": a, "to_organisation": "NOT VALID", "reason": "x"},
        headers=staff,
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "to_organisation"
    r = await world.client.post(
        f"/signals/{first}/reassign",
        json={"from_organisation": a, "to_organisation": b, "reason": "SZW owns this rule"},
        headers=staff,
    )
    assert r.status_code == 200, r.text
    assert r.json()["organisations"] == [b]
    r = await world.client.post(
        f"/signals/{first}/assignees", json={"organisation": b, "reason": "again"}, headers=staff
    )
    assert r.status_code == 422
    assert r.json()["field"] == "organisation"
    r = await world.client.post(
        f"/signals/{first}/assignees", json={"organisation": a, "reason": "both"}, headers=staff
    )
    assert r.json()["organisations"] == [b, a]

    r = await world.client.post(
        f"/signals/{duplicate}/merge", json={"into": first, "reason": "same lesson"}, headers=staff
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "merged"
    assert r.json()["merged_into"] == first
    target = (await world.client.get(f"/signals/{first}", headers=staff)).json()
    assert target["merged_from"] == [duplicate]
    r = await world.client.post(
        f"/signals/{duplicate}/responses", json={"status": "received"}, headers=world.org(a)
    )
    assert r.status_code == 409
    assert r.json()["merged_into"] == first
    trail = (await world.client.get(f"/signals/{first}/audit", headers=staff)).json()
    assert [e["action"] for e in trail] == [
        "signal.created",
        "signal.reassigned",
        "signal.assignee_added",
        "signal.merged_from",
    ]
    assert trail[1]["reason"] == "SZW owns this rule"
    assert trail[1]["actor"] == f"pmm:staff-{world.unique}"


async def test_silent_organisations_are_asked_again(world: World) -> None:
    a, b = world.org_a, world.org_b
    (sid,) = await world.evaluate(learning_point("lp1", (a, b)))
    await world.client.post(
        f"/signals/{sid}/responses",
        json={"status": "no_action", "explanation": "outside our mandate"},
        headers=world.org(b),
    )
    deps: uc.Deps = world.deps
    assert await uc.send_reminders(deps) == 0  # nobody is late yet
    later = dataclasses.replace(
        deps, now=lambda: datetime.now(UTC) + timedelta(days=deps.term_days + 1)
    )
    assert await uc.send_reminders(later) == 1  # a, not b who answered
    assert await uc.send_reminders(later) == 0  # a new term started
    records = await world.assigned(a, 2, settle_s=1.0)
    assert [r["type"] for r in records] == [
        "nl.maatwerk.signal.assigned",
        "nl.maatwerk.signal.followup_requested",
    ]
    assert records[1]["data"]["reminder"] == 1
    signal = await world.signal(sid)
    assert signal["assignments"][0]["reminders"] == 1
    assert signal["assignments"][1]["reminders"] == 0
    assert len(await world.assigned(b, 1, settle_s=1.0)) == 1  # b answered: no reminder


async def test_monitor_export_and_yearly_report(world: World, unique: str) -> None:
    a, b = world.org_a, world.org_b
    year = 2040 + int(unique[:4], 16) % 50  # a year no other test writes
    closed = datetime(year, 3, 10, 12, 0, tzinfo=UTC)
    ict = BottleneckType.ICT
    for n in range(3):
        await world.evaluate(
            learning_point(f"p{n}", (a,), regulation="Wet X art. 1"),
            learning_point(f"q{n}", (b,), btype=ict, order=LearningOrder.SECOND, regulation=None),
            closed_at=closed + timedelta(days=40 * n),
            kind=SubmitterKind.CARE_INSTITUTION if n == 2 else SubmitterKind.MUNICIPALITY,
            duration_days=7 * (n + 6),
        )
    staff = world.staff()
    r = await world.client.get("/monitor", params={"threshold": 3}, headers=staff)
    candidates = r.json()["candidates_for_order_3"]
    mine = [c for c in candidates if c["organisation"] in (a, b)]
    assert {(c["organisation"], c["bottleneck_type"], c["cases"]) for c in mine} == {
        (a, "laws_and_regulations", 3),
        (b, "ict", 3),
    }
    assert next(c for c in mine if c["organisation"] == a)["regulation_reference"] == "wet x art. 1"
    r = await world.client.get("/monitor", params={"threshold": 4}, headers=staff)
    assert not [c for c in r.json()["candidates_for_order_3"] if c["organisation"] in (a, b)]
    assert (await world.client.get("/monitor", headers=world.org(a))).status_code == 403

    # an answer with a measure, for the report's examples
    _, sid = await world.evaluate(
        learning_point("x1", (a,)),
        learning_point("x2", (b,)),
        closed_at=closed + timedelta(days=200),
        duration_days=49,
    )
    await world.client.post(
        f"/signals/{sid}/responses",
        json={"status": "measure_taken", "explanation": "ICT-koppeling hersteld"},
        headers=world.org(b),
    )

    r = await world.client.get("/signals/export", params={"year": year}, headers=staff)
    rows = r.json()
    assert len(rows) == 8
    assert "case_id" not in rows[0]
    r = await world.client.get(
        "/signals/export", params={"year": year, "format": "csv"}, headers=staff
    )
    assert r.headers["content-type"].startswith("text/csv")
    assert len(r.text.strip().splitlines()) == 9
    assert (await world.client.get("/signals/export", headers=world.org(a))).status_code == 403

    async def current() -> dict[str, Any] | None:  # the figures follow within a second
        body: dict[str, Any] = (await world.client.get(f"/reports/{year}", headers=staff)).json()
        done = body["cases_closed"] == 4 and body["measures_examples"]
        return body if done else None

    report = await eventually(current, timeout_s=20)
    kinds = {k["key"]: k["n"] for k in report["by_submitter_kind"]}
    assert kinds["municipality"] == 3
    assert kinds["care_institution"] == 1
    assert report["duration_weeks"] == {"average": 7.0, "median": 7.0}
    assert {o["key"]: o["n"] for o in report["learning_points_by_order"]} == {
        "1": 0,
        "2": 3,
        "3": 5,
    }
    assert [m["n"] for m in report["closed_per_month"]][:9] == [0, 0, 1, 1, 1, 0, 0, 0, 1]
    assert {d["key"]: d["n"] for d in report["life_domains"]}["income"] == 4
    assert {d["key"]: d["n"] for d in report["bottleneck_types"]}["ict"] == 3
    by_org = {o["organisation"]: o for o in report["signals_by_organisation"]}
    assert by_org[b]["statuses"]["measure_taken"] == 1
    assert by_org[a]["total"] == 4
    assert report["measures_examples"][0]["measure"] == "ICT-koppeling hersteld"

    page = await world.client.get(f"/reports/{year}", params={"format": "html"}, headers=staff)
    assert page.headers["content-type"].startswith("text/html")
    assert f"Jaarrapportage systeemleren {year}" in page.text
    assert page.text.count("<svg") == 9
    csv_text = (
        await world.client.get(f"/reports/{year}", params={"format": "csv"}, headers=staff)
    ).text
    assert "summary,cases_closed,Afgesloten casussen,4" in csv_text
    r = await world.client.get("/reports/1999", headers=staff)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "year"
    r = await world.client.get(f"/reports/{year}", headers=world.org(a))
    assert r.status_code == 403

    # the command writes the same report from the service's database
    settings = world.app.state.platform.settings
    html = await write_report(settings, year, "html", refresh=True)
    assert "ICT-koppeling hersteld" in html


async def test_anyone_needs_a_token(world: World) -> None:
    assert (await world.client.get("/signals")).status_code == 401
    channels = json.dumps((await world.client.get("/asyncapi.json")).json()["channels"])
    assert "pmm.signalen.signals" in channels
    assert (await world.client.get("/readyz")).status_code == 200
    r = await world.client.get(
        "/signals", headers=bearer(world.issuer, world.org_a, Role.AMBASSADOR)
    )
    assert r.json()["total"] == 0
    r = await world.client.get(
        "/signals",
        params={"organisation": world.org_b},
        headers=bearer(world.issuer, world.org_a, Role.AMBASSADOR),
    )
    assert r.status_code == 403


async def test_a_replayed_evaluation_counts_once_in_the_yearly_figures(
    world: World, unique: str
) -> None:
    year = 2040 + int(unique[4:8], 16) % 50
    events = world.case_events(
        (learning_point("lp1", (world.org_a,)),),
        closed_at=datetime(year, 5, 1, tzinfo=UTC),
        duration_days=35,
    )
    await world.send(*events)
    await world.signal(signal_id_for(events[2].id, "lp1"))
    figures = world.deps.figures
    # the evaluation's delta is carried by its announcement, not by the case document
    case_id = events[2].data.case_id
    case = await world.deps.cases.collection.find_one({"_id": case_id})
    assert case is not None
    assert not case.get("_figures")
    assert figures.pending is not None
    carried = f"delta/case:{case_id}:evaluated"  # (the projector's timer may be first)
    await figures.run_once()
    assert await figures.pending.collection.find_one({"_id": carried}) is None
    await world.send(events[2])  # the Loket's evaluation again (redelivery, replay)
    await asyncio.sleep(1.0)
    await figures.run_once()
    counts = await figures.counts(year)
    assert counts["cases"] == 1
    assert counts["order:3"] == 1
    assert counts[f"follow_up:{world.org_a}:assigned"] == 1
    # the same delta applied twice directly: once
    delta = {"id": f"probe-{unique}", "year": year, "bucket": 1, "counts": {"cases": 1}}
    assert await figures.apply(delta) is True
    assert await figures.apply(delta) is False
    assert (await figures.counts(year))["cases"] == 2
    # the deltas of one bucket in one write, each once, also when one is in the bucket
    many = [
        {"id": f"probe-{unique}-{n}", "year": year, "bucket": 2, "counts": {"cases": 1}}
        for n in range(4)
    ]
    assert await figures.apply(many[0]) is True
    assert await figures.apply_all([*many, many[1]]) == 3  # one by one: many[0] is there
    assert await figures.apply_all(many) == 0
    more = [{**d, "id": f"{d['id']}-again", "counts": {"cases": 2}} for d in many]
    assert await figures.apply_all(more) == 4  # one write
    assert (await figures.counts(year))["cases"] == 2 + 4 + 8


async def test_v1_paging_and_who_sees_the_case_reference(world: World) -> None:
    """Issue 17 (items 1, 2) and issue 14 (a huge page number is 422, never 500)."""
    a = world.org_a
    director = f"regie-{world.unique[:8]}"
    submitted, closed, evaluated = world.case_events(
        (learning_point("lp1", (a,)), learning_point("lp2", (a,)))
    )
    case_id, number = evaluated.data.case_id, evaluated.data.case_number
    assigned = new_event(
        CaseAssigned(case_id=case_id, case_number=number, case_director_id=director),
        subject=case_id,
        source=LOKET,
    )
    await world.send(submitted, assigned, closed, evaluated)
    ids = [signal_id_for(evaluated.id, p) for p in ("lp1", "lp2")]
    for sid in ids:
        await world.signal(sid)

    # the organisation: the lesson only, on /v1 and on the old path alike
    for path in (f"/v1/signals/{ids[0]}", f"/signals/{ids[0]}"):
        r = await world.client.get(path, headers=world.org(a))
        assert r.status_code == 200, r.text
        assert r.headers["API-Version"]
        assert not {"case_id", "case_number"} & set(r.json())
        assert number not in r.text
        assert case_id not in r.text
    page = (await world.client.get("/v1/signals", headers=world.org(a))).json()
    assert page["total"] == 2
    assert all(not {"case_id", "case_number"} & set(s) for s in page["items"])

    # the case's regievoerder: its signals with the case reference, and the report
    regie = bearer(world.issuer, "pmm", Role.CASE_DIRECTOR, subject=director)
    page = (await world.client.get("/v1/signals", headers=regie)).json()
    assert page["total"] == 2
    assert {s["case_number"] for s in page["items"]} == {number}
    r = await world.client.get(f"/v1/signals/{ids[1]}", headers=regie)
    assert r.json()["case_id"] == case_id
    assert (await world.client.get("/v1/reports/2026", headers=regie)).status_code == 200
    other = bearer(world.issuer, "pmm", Role.CASE_DIRECTOR, subject=f"{director}-x")
    assert (await world.client.get("/v1/signals", headers=other)).json()["total"] == 0
    assert (await world.client.get(f"/v1/signals/{ids[1]}", headers=other)).status_code == 404

    # paging: one page at a time with a next link; out-of-range numbers are 422
    first = (
        await world.client.get("/v1/signals", params={"page_size": 1}, headers=world.org(a))
    ).json()
    assert (first["total"], first["page"], len(first["items"])) == (2, 1, 1)
    assert first["next"] is not None
    assert "page=2" in first["next"]
    assert first["next"].startswith("http")
    last = (await world.client.get(first["next"], headers=world.org(a))).json()
    assert last["next"] is None
    assert {first["items"][0]["id"], last["items"][0]["id"]} == set(ids)
    r = await world.client.get(
        "/signals?page_size=308&page=22938669872754475008", headers=world.staff()
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "urn:nl:pmm:problem:invalid-input"
    assert {e["field"] for e in r.json()["errors"]} == {"page", "page_size"}
    r = await world.client.get("/v1/signals", params={"page": 0}, headers=world.staff())
    assert r.status_code == 422
    assert r.json()["field"] == "page"
    r = await world.client.get("/v1/signals", params={"order": "9"}, headers=world.staff())
    assert r.status_code == 422
    assert r.json()["field"] == "order"
