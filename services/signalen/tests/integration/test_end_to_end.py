"""End to end: two organisations run the consumer kit side by side. Each receives only
the signals assigned to it, and their answers flow back and update the signals."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from pmm_contracts.consumer import SignalConsumer, handler_from, publish_answer
from pmm_contracts.envelope import CloudEvent
from pmm_contracts.events.signals import ResponseStatus, SignalAssigned, SignalResponse
from pmm_runtime.testing import admin_connection, eventually

from .conftest import World, learning_point

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


class Organisation:
    """An organisation's own handler: it records what it got and answers."""

    def __init__(self, answer: dict[str, Any] | None) -> None:
        self.answer = answer
        self.got: list[CloudEvent[Any]] = []

    async def __call__(self, event: CloudEvent[Any]) -> dict[str, Any] | None:
        self.got.append(event)
        return self.answer if isinstance(event.data, SignalAssigned) else None

    def signal_ids(self) -> set[str]:
        return {e.data.signal_id for e in self.got}


async def test_two_organisations_each_receive_only_their_own_signals_and_answer(
    world: World, tmp_path: Path
) -> None:
    a, b = world.org_a, world.org_b
    org_a = Organisation({"status": "measure_taken", "explanation": "beleidsregel aangepast"})
    org_b = Organisation({"status": "received"})
    connection = admin_connection(world.bootstrap)
    consumers = [
        SignalConsumer(org=a, handler=org_a, connection=connection, group_id=f"{a}-signals"),
        SignalConsumer(org=b, handler=org_b, connection=connection, group_id=f"{b}-signals"),
        # a third follower of b's topic, with its own group, writing a JSON-lines file
        SignalConsumer(
            org=b,
            handler=handler_from(f"file:{tmp_path / 'b.jsonl'}"),
            connection=connection,
            group_id=f"{b}-archive",
        ),
    ]
    ready = [asyncio.Event() for _ in consumers]
    tasks = [asyncio.create_task(c.run(ready=r)) for c, r in zip(consumers, ready, strict=True)]
    try:
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), timeout=20)
        only_a, only_b, both = await world.evaluate(
            learning_point("lp1", (a,)),
            learning_point("lp2", (b,)),
            learning_point("lp3", (a, b)),
        )

        async def delivered() -> bool:
            return org_a.signal_ids() == {only_a, both} and org_b.signal_ids() == {only_b, both}

        await eventually(delivered, timeout_s=30)
        assert all(e.data.organisation == a for e in org_a.got)
        assert all(e.data.organisation == b for e in org_b.got)

        # the answers flowed back over each organisation's response topic
        def status_of(org: str):  # type: ignore[no-untyped-def]
            def check(signal: dict[str, Any]) -> bool:
                return any(
                    x["organisation"] == org and x["status"] != "assigned"
                    for x in signal["assignments"]
                )

            return check

        first = await world.signal(only_a, status_of(a))
        assert first["status"] == "closed"
        answer = first["assignments"][0]["answers"][0]
        assert answer == {**answer, "status": "measure_taken", "via": "kafka"}
        assert answer["explanation"] == "beleidsregel aangepast"
        second = await world.signal(only_b, status_of(b))
        assert second["assignments"][0]["status"] == "received"
        shared = await world.signal(
            both, lambda s: all(x["status"] != "assigned" for x in s["assignments"])
        )
        assert {x["organisation"]: x["status"] for x in shared["assignments"]} == {
            a: "measure_taken",
            b: "received",
        }
        trail = (await world.client.get(f"/signals/{both}/audit", headers=world.staff())).json()
        actors = {e["actor"] for e in trail[1:]}
        assert actors == {f"{a}:consumer", f"{b}:consumer"}

        lines = await _lines(tmp_path / "b.jsonl", 2)
        assert {json.loads(line)["data"]["signal_id"] for line in lines} == {only_b, both}

        # an answer later, from a script (as `pmm-signals-consumer answer` does)
        later = SignalResponse(
            signal_id=only_b,
            organisation=b,
            status=ResponseStatus.NO_ACTION,
            explanation="buiten ons mandaat; ligt bij de gemeente",
        )
        await publish_answer(b, later, connection=connection)
        done = await world.signal(only_b, lambda s: s["status"] == "closed")
        assert done["assignments"][0]["status"] == "no_action"
    finally:
        for consumer in consumers:
            consumer.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=20)
    assert consumers[0].answered == 2
    assert consumers[1].answered == 2
    assert consumers[2].answered == 0


async def _lines(path: Path, count: int) -> list[str]:
    def read() -> list[str] | None:
        if not path.exists():
            return None
        found = path.read_text(encoding="utf-8").splitlines()
        return found if len(found) >= count else None

    result: list[str] = await eventually(read, timeout_s=20)
    return result
