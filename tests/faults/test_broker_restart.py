"""Kafka broker restarts under load (issue 14): the test's OWN broker, never the shared one.

A single KRaft node from ``deploy/local/kafka.sh`` on 127.0.0.1:29092 (controller 29093,
TLS 29094, state in .local/faults-kafka, plaintext) is stopped and started 5 times while
evaluations arrive on a case topic and signalen (a real ``pmm-signalen`` process, never
restarted) turns each learning point into a signal and publishes ``signal.assigned``
through its outbox. Counted: every evaluation the broker acknowledged becomes exactly one
signal and one event (its consumer and its producer recover by themselves); ``/readyz``
goes red while the broker is away and green again after it is back.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pymongo import AsyncMongoClient

from pmm_contracts import encode_event, new_event
from pmm_contracts.cli import main as contracts_cli
from pmm_contracts.events.cases import CaseEvaluated
from pmm_contracts.topics import signals_assigned_topic
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.testing import create_topics, eventually

from .support import (
    ROOT,
    Readiness,
    ServiceProcess,
    evaluation,
    event_ids_by_subject,
    local_script,
    outbox_drained,
    records_of,
    service_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

RESTARTS = 5
PORT = 29092
BOOTSTRAP = f"127.0.0.1:{PORT}"
BROKER_ENV = {
    "PMM_KAFKA_SECURITY": "plaintext",
    "PMM_KAFKA_PORT": str(PORT),
    "PMM_KAFKA_CONTROLLER_PORT": str(PORT + 1),
    "PMM_KAFKA_TLS_PORT": str(PORT + 2),
    "PMM_KAFKA_STATE_DIR": str(ROOT / ".local" / "faults-kafka"),
    "PMM_KAFKA_HEAP": "384m",
}
LOKET = "urn:nld:oin:00000001234567890000:systeem:loket"
rng = random.Random(20261204)


@pytest.fixture(scope="module")
def own_broker() -> Iterator[str]:
    was_running = "running on" in local_script("kafka", "status", BROKER_ENV)
    local_script("kafka", "start", BROKER_ENV)
    assert contracts_cli(["topics", "--bootstrap", BOOTSTRAP]) == 0
    yield BOOTSTRAP
    if not was_running:
        local_script("kafka", "stop", BROKER_ENV)


async def test_broker_restarts_under_load_lose_nothing_and_readiness_recovers(
    own_broker: str, make_settings: Callable[..., Any], unique: str
) -> None:
    settings = make_settings(ServiceSettings, service_name="signalen")
    cases_topic = f"test.faults.broker-cases.{unique}"
    org = f"k{unique[:10]}"
    await create_topics(own_broker, [cases_topic, cases_topic + ".dlq"], partitions=3)
    await create_topics(own_broker, [signals_assigned_topic(org)])
    env = {
        k: v for k, v in service_env(settings, "signalen").items() if not k.startswith("PMM_KAFKA")
    }
    env |= {
        "PMM_KAFKA_BOOTSTRAP": own_broker,
        "PMM_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "PMM_CASES_TOPIC": cases_topic,
        "PMM_RESPONSES_PATTERN": rf"^test\.faults\.broker-responses\.{unique}$",
    }
    signalen = ServiceProcess("signalen", env)
    evaluations = [evaluation(org, n, prefix="broker-case") for n in range(1, 41)]
    acknowledged: list[CaseEvaluated] = []
    send_failures = 0

    async def produce() -> None:
        """5 evaluations every 0.3 s; a batch the broker refused is sent again (same event
        ids: a batch written in part before the failure is deduplicated by signalen)."""
        nonlocal send_failures
        for chunk in range(0, len(evaluations), 5):
            batch = evaluations[chunk : chunk + 5]
            events = [new_event(e, subject=e.case_id, source=LOKET) for e in batch]
            while True:
                producer = AIOKafkaProducer(
                    bootstrap_servers=own_broker, acks="all", request_timeout_ms=10_000
                )
                try:
                    await producer.start()
                    for event in events:
                        await producer.send_and_wait(
                            cases_topic, encode_event(event), key=event.key
                        )
                    break
                except KafkaError:  # the broker is away: try again
                    send_failures += 1
                    await asyncio.sleep(0.5)
                finally:
                    await producer.stop()
            acknowledged.extend(batch)
            await asyncio.sleep(0.3)

    red_after: list[float] = []
    green_after: list[float] = []
    outages: list[float] = []
    try:
        await signalen.start(ready_timeout_s=120)
        assert signalen.process is not None
        pid = signalen.process.pid
        readiness = Readiness(signalen.url)
        watcher = asyncio.create_task(readiness.watch())
        producer = asyncio.create_task(produce())
        for _ in range(RESTARTS):
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            stopped = time.monotonic()
            await asyncio.to_thread(local_script, "kafka", "stop", BROKER_ENV)
            red_after.append(await readiness.until(lambda c: c == 503, stopped, timeout_s=60))
            await asyncio.sleep(rng.uniform(0.0, 2.0))
            started = time.monotonic()
            await asyncio.to_thread(local_script, "kafka", "start", BROKER_ENV)
            outages.append(time.monotonic() - stopped)
            green_after.append(await readiness.until(lambda c: c == 200, started, timeout_s=120))
        await asyncio.wait_for(producer, timeout=180)
        database = env["PMM_MONGODB_DATABASE"]
        expected = 2 * len(acknowledged)

        async def all_signals() -> bool:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
            try:
                return await client[database]["signals"].count_documents({}) >= expected
            finally:
                await client.close()

        assert await eventually(all_signals, timeout_s=180)
        assert await eventually(
            lambda: outbox_drained(settings.mongodb_url, database, "signals"), timeout_s=120
        )
        assert signalen.process.poll() is None, "signalen died"
        assert signalen.process.pid == pid, "signalen was restarted"
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
        try:
            stored = await client[database]["signals"].count_documents({})
        finally:
            await client.close()
        records = await records_of(own_broker, signals_assigned_topic(org))
        subjects = {r.key.decode() for r in records if r.key}
        assigned = event_ids_by_subject(records, subjects, "nl.maatwerk.signal.assigned")
        doubled = {s: ids for s, ids in assigned.items() if len(ids) != 1}
        print(  # the figures of docs/reliability.md
            f"broker restart: restarts={RESTARTS} evaluations={len(evaluations)} "
            f"acknowledged={len(acknowledged)} send_retries={send_failures} "
            f"signals={stored} on_topic={len(assigned)} lost={expected - len(assigned)} "
            f"duplicated={len(doubled) + stored - expected} "
            f"outage_s={[round(o, 1) for o in outages]} "
            f"red_after_s={[round(r, 1) for r in red_after]} "
            f"green_after_s={[round(g, 1) for g in green_after]}"
        )
        assert len(acknowledged) == len(evaluations)
        assert stored == expected, "a learning point made no or two signals"
        assert len(assigned) == expected, "a signal never reached the organisation's topic"
        assert not doubled, "a signal was assigned twice with different event ids"
    finally:
        signalen.stop()
        # the broker is left running for the next test, stopped by the fixture
        local_script("kafka", "start", BROKER_ENV)
