"""The LET's rules against the real broker and store: who may read and change, bad input
(422 naming the field), forbidden transitions (409 naming the allowed next states), paged
lists under /v1 (filtered by case; huge page numbers are 422), nothing half-written, the
audit trail, overdue reminders, withdrawal and the figures."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from pmm_contracts import new_event
from pmm_contracts.events.cases import CaseAssigned
from pmm_contracts.topics import LOKET_CASES
from pmm_let.domain.model import escalation_id_for
from pmm_let.service import usecases as uc
from pmm_runtime.testing import bearer

pytestmark = pytest.mark.integration


async def opened(w: Any, n: int) -> str:
    request_id, _ = await w.request(n)
    escalation_id = escalation_id_for(request_id)
    await w.escalation(escalation_id)
    return escalation_id


async def held(w: Any, n: int) -> str:
    escalation_id = await opened(w, n)
    base, h = f"/escalations/{escalation_id}", w.chair_h()
    today = str(date.today())
    for path, body in (
        ("admissibility", {"admitted": True}),
        ("session", {"session_date": today, "executive_ids": [w.exec_a, w.deputy_b]}),
        ("session/attendance", {"present": [w.exec_a]}),
    ):
        r = await w.client.post(f"{base}/{path}", headers=h, json=body)
        assert r.status_code == 200, r.text
    return escalation_id


async def test_access_errors_and_nothing_half_written(world: Any) -> None:
    w, c = world, world.client
    escalation_id = await opened(w, 1)
    base = f"/escalations/{escalation_id}"

    # Executives of an involved organisation read theirs, others do not even see it.
    r = await c.get(base, headers=w.executive_h(w.org_a))
    assert r.status_code == 200
    r = await c.get(base, headers=w.executive_h("zz" + w.unique[:6]))
    assert r.status_code == 404
    r = await c.get("/escalations", headers=w.executive_h(w.org_b))
    assert [e["id"] for e in r.json()["items"]] == [escalation_id]
    r = await c.get(base, headers=bearer(w.issuer, w.org_a, "maatwerk_professional"))
    assert r.status_code == 403
    assert (await c.get(base)).status_code == 401

    # Lists are pages under /v1 too, filtered by case; a huge page number is a 422 (was 500).
    case_id = f"case-{w.unique}-1"
    r = await c.get("/v1/escalations", headers=w.staff_h(), params={"case_id": case_id})
    assert r.status_code == 200, r.text
    assert r.headers["API-Version"] == "1.0.0"
    page = r.json()
    assert (page["total"], [e["id"] for e in page["items"]], page["next"]) == (
        1,
        [escalation_id],
        None,
    )
    assert page["items"][0]["next_deadline"] is None
    r = await c.get("/escalations", headers=w.staff_h(), params={"case_id": "no-such-case"})
    assert (r.json()["total"], r.json()["items"]) == (0, [])
    r = await c.get("/escalations?page=2305843009213693952", headers=w.staff_h())
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "urn:nl:pmm:problem:invalid-input"
    assert r.json()["errors"][0]["field"] == "page"
    r = await c.get("/v1/escalations", headers=w.staff_h(), params={"page_size": 201})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "page_size"
    r = await c.get(f"/v1/escalations/{escalation_id}/audit", headers=w.staff_h())
    assert r.json()["total"] == 1

    # Only the chair decides admissibility; executives change nothing.
    r = await c.post(f"{base}/admissibility", headers=w.staff_h(), json={"admitted": True})
    assert r.status_code == 403
    r = await c.post(
        f"{base}/withdrawal",
        headers=w.executive_h(w.org_a),
        json={"solved_under_pressure": True, "reason": "solved"},
    )
    assert r.status_code == 403

    # Bad input: 422 naming the field, syntax (contract) and meaning (domain) alike.
    r = await c.post(f"{base}/admissibility", headers=w.chair_h(), json={"admitted": "perhaps"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "admitted"
    r = await c.post(f"{base}/admissibility", headers=w.chair_h(), json={"admitted": False})
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "urn:nl:pmm:problem:rule-violation"
    assert r.json()["field"] == r.json()["errors"][0]["field"] == "reason"
    assert "reason" in r.json()["detail"]
    r = await c.post(
        f"{base}/withdrawal",
        headers=w.chair_h(),
        json={"solved_under_pressure": True, "reason": "see BSN 111222333"},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "reason"

    # A forbidden transition: 409 naming the allowed next states.
    r = await c.post(
        f"{base}/outcome", headers=w.chair_h(), json={"outcome": "none", "summary": "nothing"}
    )
    assert r.status_code == 409
    assert r.json()["type"] == "urn:nl:pmm:problem:not-in-state"
    assert r.json()["allowed"] == ["admitted", "refused", "withdrawn"]
    assert r.json()["current_status"] == "requested"

    # Two chairs' clicks at once: exactly one admission, the other is told 409.
    both = await asyncio.gather(
        *[
            c.post(f"{base}/admissibility", headers=w.chair_h(), json={"admitted": True})
            for _ in range(2)
        ]
    )
    assert sorted(r.status_code for r in both) == [200, 409]

    # The session: the chair must be a LET chair in the register; dates not in the past.
    r = await c.post(
        f"{base}/session",
        headers=w.chair_h(),
        json={"session_date": str(date.today()), "chair_id": w.exec_a},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "chair_id"
    r = await c.post(
        f"{base}/session",
        headers=w.chair_h(),
        json={"session_date": str(date.today() - timedelta(days=1))},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "session_date"
    r = await c.post(
        f"{base}/session",
        headers=w.chair_h(),
        json={"session_date": str(date.today()), "executive_ids": [w.exec_b, "nobody"]},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "executive_ids"

    # Nothing of the refused requests was written: two changes, two audit lines, and
    # exactly the two events they caused.
    doc = await w.app.state.deps.repo.collection.find_one({"_id": escalation_id})
    assert doc["_version"] == 2
    assert doc["status"] == "admitted"
    r = await c.get(f"{base}/audit", headers=w.staff_h())
    assert [(a["action"], a["actor"]) for a in r.json()["items"]] == [
        ("escalation.opened", "service:loket"),
        ("escalation.admitted", f"pmm:{w.chair}"),
    ]
    assert (await c.get(f"{base}/audit", headers=w.executive_h(w.org_a))).status_code == 403
    mine = await w.published(escalation_id)
    assert [e["type"].rsplit(".", 1)[-1] for e in mine] == [
        "opened",
        "admissibility_decided",
    ]

    # Another event of a case is skipped: no escalation for it.
    other = CaseAssigned(
        case_id=f"case-{w.unique}-9", case_number="LMM-2026-0009", case_director_id="d"
    )
    await w.send(LOKET_CASES, new_event(other, subject=other.case_id, source=w.loket_source))
    request_id, _ = await w.request(3, case=9)  # same key: it arrives after the other one
    await w.escalation(escalation_id_for(request_id))
    found = await w.app.state.deps.repo.collection.count_documents({"case_id": other.case_id})
    assert found == 1


async def test_overdue_reminders_withdrawal_and_figures(world: Any) -> None:
    w, c = world, world.client
    deps: uc.Deps = w.app.state.deps
    escalation_id = await held(w, 1)
    base = f"/escalations/{escalation_id}"
    deadline = date.today() + timedelta(days=3)
    ids = []
    for org in (w.org_a, w.org_b):
        r = await c.post(
            f"{base}/agreements",
            headers=w.staff_h(),
            json={"organisation": org, "action": "act", "deadline": str(deadline)},
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["agreements"][-1]["id"])
    r = await c.post(f"{base}/agreements/{ids[1]}/done", headers=w.staff_h())
    assert r.status_code == 200

    # Four days on: the open agreement is overdue, once.
    later = dataclasses.replace(deps, now=lambda: datetime.now(UTC) + timedelta(days=4))
    assert await uc.scan_overdue(later) == 1
    assert await uc.scan_overdue(later) == 0
    reminders = [
        e["data"] for e in await w.published(escalation_id) if e["data"].get("status") == "overdue"
    ]
    assert [(x["agreement_id"], x["organisation"]) for x in reminders] == [(ids[0], w.org_a)]

    r = await c.post(
        f"{base}/outcome",
        headers=w.chair_h(),
        json={"outcome": "partial", "summary": "one of two done"},
    )
    assert r.status_code == 200

    # Two more: one withdrawn because it was solved under pressure, one scheduled.
    pressured = await opened(w, 2)
    r = await c.post(
        f"/escalations/{pressured}/withdrawal",
        headers=w.chair_h(),
        json={"solved_under_pressure": True, "reason": "UWV solved it the day after"},
    )
    assert r.status_code == 200
    assert r.json()["status"] == "withdrawn"
    planned = await opened(w, 3)
    for path, body in (
        ("admissibility", {"admitted": True}),
        ("session", {"session_date": str(date.today() + timedelta(days=10))}),
    ):
        r = await c.post(f"/escalations/{planned}/{path}", headers=w.chair_h(), json=body)
        assert r.status_code == 200, r.text
    r = await c.post(
        f"/escalations/{planned}/session/attendance",
        headers=w.chair_h(),
        json={"present": [w.exec_a]},
    )
    assert r.status_code == 422  # the session is not there yet

    r = await c.get("/overview", headers=w.staff_h())
    assert r.status_code == 200, r.text
    figures = r.json()
    # The LET follows the whole shared case topic from its start, so other tests' requests
    # are opened here too; everything past "requested" is this test's own.
    assert figures["open_escalations"] >= 1
    assert figures["sessions_planned"] == 1
    assert figures["agreements"] == {"open": 0, "overdue": 1, "done": 1}
    assert [(o["escalation_id"], o["agreement_id"]) for o in figures["overdue_agreements"]] == [
        (escalation_id, ids[0])
    ]
    (year,) = figures["per_year"]
    assert year["year"] == date.today().year
    assert year["outcomes"]["partial"] == 1
    assert year["outcomes"]["withdrawn_solved_under_pressure"] == 1
    assert year["share_solved_under_pressure"] == 0.5
    assert (await c.get("/overview", headers=w.executive_h(w.org_a))).status_code == 403
