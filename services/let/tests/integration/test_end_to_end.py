"""End to end: from the Loket's escalation request on ``pmm.loket.cases`` to the outcome the
Loket receives on ``pmm.let.escalations``, driven over HTTP against the real broker and
store; a replayed request opens nothing new."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from pmm_let.domain.model import escalation_id_for

pytestmark = pytest.mark.integration


async def test_from_the_loket_request_to_the_outcome_the_loket_receives(world: Any) -> None:
    w = world
    request_id, case_id = await w.request()
    escalation_id = escalation_id_for(request_id)
    opened = await w.escalation(escalation_id)
    assert opened["status"] == "requested"
    assert opened["case_id"] == case_id
    assert opened["organisations_involved"] == [w.org_a, w.org_b]

    chair, c = w.chair_h(), w.client
    channels = (await c.get("/asyncapi.json")).json()["channels"]
    assert {"pmm.let.escalations:send", "pmm.loket.cases:receive"} <= set(channels)
    base = f"/escalations/{escalation_id}"
    r = await c.post(f"{base}/admissibility", headers=chair, json={"admitted": True})
    assert r.status_code == 200, r.text

    today = date.today()
    r = await c.get(f"{base}/session/proposal", headers=chair, params={"session_date": str(today)})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "invited": [
            {"executive_id": w.exec_a, "organisation": w.org_a, "deputy_for": None},
            {"executive_id": w.deputy_b, "organisation": w.org_b, "deputy_for": w.exec_b},
        ],
        "uncovered_organisations": [],
    }
    r = await c.post(f"{base}/session", headers=chair, json={"session_date": str(today)})
    assert r.status_code == 200, r.text
    assert r.json()["session"]["chair_id"] == w.chair
    r = await c.post(
        f"{base}/session/attendance", headers=chair, json={"present": [w.exec_a, w.deputy_b]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "held"

    agreements = []
    for org, action in ((w.org_a, "restart the benefit"), (w.org_b, "pay the rent arrears")):
        r = await c.post(
            f"{base}/agreements",
            headers=chair,
            json={"organisation": org, "action": action, "deadline": str(today + timedelta(7))},
        )
        assert r.status_code == 201, r.text
        agreements.append(r.json()["agreements"][-1]["id"])
    r = await c.post(f"{base}/agreements/{agreements[0]}/done", headers=chair)
    assert r.status_code == 200, r.text

    summary = "UWV restarts the benefit; the municipality pays the arrears"
    r = await c.post(
        f"{base}/outcome", headers=chair, json={"outcome": "breakthrough", "summary": summary}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "concluded"

    events = await w.published(escalation_id, timeout_s=6)
    types = [e["type"].rsplit(".", 1)[-1] for e in events]
    assert types == [
        "opened",
        "admissibility_decided",
        "session_scheduled",
        "agreement",
        "agreement",
        "agreement",
        "concluded",
    ]
    assert [e["data"]["status"] for e in events if e["type"].endswith(".agreement")] == [
        "open",
        "open",
        "done",
    ]
    scheduled = events[2]["data"]
    assert scheduled["invited_executive_ids"] == [w.exec_a, w.deputy_b]
    outcome = events[-1]
    assert outcome["subject"] == escalation_id
    assert outcome["data"] == {
        "escalation_id": escalation_id,
        "case_id": case_id,
        "outcome": "breakthrough",
        "summary": summary,
    }

    # A replayed request (a new envelope, the same request id) opens nothing new.
    await w.request(request_id=request_id)
    await w.request(2, case=1)  # same key, so same partition: once it is in, so is the replay
    await w.escalation(escalation_id_for(f"req-{w.unique}-2"))
    again = await w.escalation(escalation_id)
    assert again["status"] == "concluded"
    assert len(await w.published(escalation_id)) == len(events)
