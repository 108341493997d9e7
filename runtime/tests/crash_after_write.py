"""Run as a subprocess: write an aggregate with its outbox event, then die by SIGKILL
before any relay could publish it (the worst moment for a dual write)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from pmm_contracts import new_event
from pmm_runtime.mongo import create_client
from pmm_runtime.outbox import AggregateStore, Outgoing

sys.path.insert(0, os.path.dirname(__file__))
from support import Counted


async def main(mongodb_url: str, database: str, topic: str, aggregate_id: str) -> None:
    client = create_client(mongodb_url, app_name="crash-test")
    store = AggregateStore(client[database]["counters"])
    event = new_event(
        Counted(counter_id=aggregate_id, amount=7),
        subject=aggregate_id,
        source="urn:nld:oin:00000001234567890000:systeem:test",
    )
    await store.create(aggregate_id, {"total": 7}, [Outgoing(topic, event)])
    print(event.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
