"""Store restarts under load (issue 14): the test's OWN FerretDB, never the shared one.

``deploy/local/store.sh`` on 127.0.0.1:27027 (state in .local/faults-store) is stopped and
started 3 times while 3 clients submit cases to the Loket (a real ``pmm-loket`` process,
never restarted). Counted: while the store is away every request that cannot be served
answers 503 problem details (``application/problem+json``, type ``unavailable``), never a
500 or a plain page; ``/readyz`` goes red and green again; afterwards every acknowledged
case is stored once, nothing is half-written (every stored case's ``submitted`` event is on
the topic with one event id, one audit entry, the outbox drains, case numbers unique).
Each client retries a submission under its ``Idempotency-Key`` until it is acknowledged, so
every stored case is an acknowledged one: a write that was saved while its client saw a
503 is answered to the retry, not stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from pmm_contracts import new_event
from pmm_contracts.envelope import CloudEvent, EventData
from pmm_contracts.events.register import OrganisationState
from pmm_contracts.topics import LOKET_CASES, dead_letter_topic
from pmm_contracts.vocabulary import OrganisationKind
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.platform import Platform
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.testing import create_topics, eventually, publish_events, read_topic

from .support import (
    ROOT,
    Readiness,
    ServiceProcess,
    event_ids_by_subject,
    local_script,
    outbox_drained,
    records_of,
    service_env,
    submission,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

RESTARTS = 3
PORT = 27027
STORE_ENV = {
    "PMM_MONGODB_PORT": str(PORT),
    "PMM_STORE_STATE_DIR": str(ROOT / ".local" / "faults-store"),
}
rng = random.Random(20261205)


@pytest.fixture(scope="module")
def own_store() -> Iterator[str]:
    was_running = "running on" in local_script("store", "status", STORE_ENV)
    local_script("store", "start", STORE_ENV)
    url = local_script("store", "url", STORE_ENV).strip().splitlines()[-1]
    assert f":{PORT}/" in url, url
    yield url
    if not was_running:
        local_script("store", "stop", STORE_ENV)


async def test_store_restarts_answer_503_problems_and_write_nothing_half(
    own_store: str, make_settings: Callable[..., Any], issuer: LocalIssuer, unique: str
) -> None:
    settings = make_settings(ServiceSettings, service_name="loket", mongodb_url=own_store)
    org = f"m{unique[:10]}"
    env = service_env(settings, "loket")
    database = env["PMM_MONGODB_DATABASE"]
    state = OrganisationState(
        code=org, name=f"Store {org}", kind=OrganisationKind.MUNICIPALITY, is_member=True, version=1
    )
    seed: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(own_store)
    try:  # the Loket's read model of the register (replaying the shared changelog is not this)
        await seed[database]["register_organisations"].insert_one(
            {"_id": org, **state.model_dump(mode="json")}
        )
    finally:
        await seed.close()
    loket = ServiceProcess("loket", env)
    token = issuer.issue(subject=f"{org}-p1", organisation=org, roles=["maatwerk_professional"])
    headers = {"Authorization": f"Bearer {token}"}
    acknowledged: set[str] = set()
    replayed: set[str] = set()
    answers: Counter[tuple[int, str]] = Counter()
    wrong: list[str] = []
    store_away = asyncio.Event()
    during_outage: Counter[int] = Counter()

    in_flight: dict[int, tuple[str, dict[str, Any]]] = {}

    async def send(client: httpx.AsyncClient, key: str, body: dict[str, Any]) -> bool:
        """One attempt of a keyed submission; True once the case is acknowledged."""
        try:
            answer = await client.post(
                "/v1/cases", headers={**headers, "Idempotency-Key": key}, json=body
            )
        except httpx.HTTPError as exc:  # a request may outlast the client's patience
            answers[(0, type(exc).__name__)] += 1
            return False
        kind = answer.headers.get("content-type", "").split(";")[0]
        answers[(answer.status_code, kind)] += 1
        if store_away.is_set():
            during_outage[answer.status_code] += 1
        if answer.status_code == 201:
            acknowledged.add(answer.json()["id"])
            if answer.headers.get("Idempotent-Replayed") == "true":
                replayed.add(answer.json()["id"])
            return True
        if answer.status_code == 503:
            problem = answer.json()
            if kind != "application/problem+json" or not problem["type"].endswith(":unavailable"):
                wrong.append(answer.text[:200])
        else:
            wrong.append(f"{answer.status_code} {kind} {answer.text[:200]}")
        return False

    async def submit(client: httpx.AsyncClient, worker: int) -> None:
        """Submit cases one after another, each retried under its own idempotency key
        until it is acknowledged (what a client of the Loket does after a 503)."""
        while True:
            key, body = uuid.uuid4().hex, submission(org)
            in_flight[worker] = (key, body)
            while True:  # a client's retry loop; what it waits for is the store, not an event
                if await send(client, key, body):
                    break
                await asyncio.sleep(0.2)
            del in_flight[worker]
            await asyncio.sleep(0.05)

    red_after: list[float] = []
    green_after: list[float] = []
    outages: list[float] = []
    try:
        await loket.start(ready_timeout_s=120)
        assert loket.process is not None
        pid = loket.process.pid
        readiness = Readiness(loket.url)
        watcher = asyncio.create_task(readiness.watch())
        async with httpx.AsyncClient(base_url=loket.url, timeout=30.0) as client:
            workers = [asyncio.create_task(submit(client, n)) for n in range(3)]
            for _ in range(RESTARTS):
                await asyncio.sleep(rng.uniform(2.0, 4.0))
                stopped = time.monotonic()
                await asyncio.to_thread(local_script, "store", "stop", STORE_ENV)
                store_away.set()
                red_after.append(await readiness.until(lambda c: c == 503, stopped, timeout_s=60))
                await asyncio.sleep(rng.uniform(2.0, 4.0))  # requests meet the missing store
                started = time.monotonic()
                store_away.clear()
                await asyncio.to_thread(local_script, "store", "start", STORE_ENV)
                outages.append(time.monotonic() - stopped)
                green_after.append(
                    await readiness.until(lambda c: c == 200, started, timeout_s=120)
                )
            await asyncio.sleep(2.0)  # served again: some cases after the last restart
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            for key, body in in_flight.values():  # the retries a stopped client still owes
                assert await eventually(lambda k=key, b=body: send(client, k, b), timeout_s=60)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

        assert await eventually(lambda: outbox_drained(own_store, database, "cases"), timeout_s=120)
        assert loket.process.poll() is None, "the Loket died"
        assert loket.process.pid == pid, "the Loket was restarted"
        client_db: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(own_store)
        try:
            stored = [
                d
                async for d in client_db[database]["cases"].find(
                    {}, {"_id": 1, "number": 1, "_audit": 1}
                )
            ]
        finally:
            await client_db.close()
        stored_ids = {d["_id"] for d in stored}
        records = await records_of(settings.kafka_bootstrap, LOKET_CASES)
        submitted = event_ids_by_subject(records, stored_ids, "nl.maatwerk.case.submitted")
        missing = stored_ids - set(submitted)
        doubled = {case: ids for case, ids in submitted.items() if len(ids) != 1}
        audits = Counter(len(d.get("_audit") or []) for d in stored)
        print(  # the figures of docs/reliability.md
            f"store restart: restarts={RESTARTS} answers={dict(answers)} "
            f"during_outage={dict(during_outage)} acknowledged={len(acknowledged)} "
            f"replayed={len(replayed)} "
            f"stored={len(stored_ids)} lost={len(acknowledged - stored_ids) + len(missing)} "
            f"duplicated={len(doubled)} audit_entries={dict(audits)} "
            f"outage_s={[round(o, 1) for o in outages]} "
            f"red_after_s={[round(r, 1) for r in red_after]} "
            f"green_after_s={[round(g, 1) for g in green_after]}"
        )
        assert not wrong, wrong[:10]
        assert during_outage[503] > 0, "no request met the missing store"
        assert acknowledged <= stored_ids, "an acknowledged case was lost"
        assert stored_ids <= acknowledged, "a retried submission made a second case"
        assert not missing, "a case was written without its event (half-written)"
        assert not doubled, "a case's submitted event was published with two ids"
        assert len({d["number"] for d in stored}) == len(stored), "a case number was reused"
        assert audits == Counter({1: len(stored)}), "a case has no or two audit entries"
    finally:
        loket.stop()
        with contextlib.suppress(RuntimeError):
            local_script("store", "start", STORE_ENV)  # for the next test; the fixture stops it


class Fact(EventData):
    """A test-only event: one fact, stored once by the consumer below."""

    EVENT_TYPE = "nl.maatwerk.test.fault-fact"

    fact_id: str


OUTAGE_S = 30.0
"""Longer than the bounded retries of a failing handler (4 attempts of up to 5 s server
selection each, ~21 s): before ``is_outage`` such an outage dead-lettered the events."""


async def test_a_consumer_waits_for_a_missing_store_and_dead_letters_nothing(
    own_store: str,
    make_settings: Callable[..., Any],
    running_platform: Callable[..., Any],
    unique: str,
) -> None:
    settings = make_settings(ServiceSettings, service_name="facts", mongodb_url=own_store)
    topic = f"test.faults.facts.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic, dead_letter_topic(topic)])
    app = Platform(settings, registry={Fact.EVENT_TYPE: Fact}, configure_logs=False)
    facts = app.store("facts")

    async def on_fact(event: CloudEvent[Fact]) -> None:
        await facts.create(
            event.data.fact_id, {"fact": event.data.fact_id}, caused_by=str(event.id)
        )

    app.subscribe(topic, handlers={Fact: on_fact}, purpose="facts")
    await running_platform(app)
    published: list[str] = []
    producing = True

    async def produce() -> None:
        while producing:
            fact_id = f"fact-{len(published):04d}"
            await publish_events(
                settings.kafka_bootstrap,
                topic,
                new_event(Fact(fact_id=fact_id), subject=fact_id, source=settings.source),
            )
            published.append(fact_id)
            await asyncio.sleep(0.2)

    producer = asyncio.create_task(produce())
    try:
        for _ in range(2):
            await asyncio.sleep(rng.uniform(2.0, 4.0))
            await asyncio.to_thread(local_script, "store", "stop", STORE_ENV)
            await asyncio.sleep(OUTAGE_S)  # events keep arriving; the consumer meets no store
            await asyncio.to_thread(local_script, "store", "start", STORE_ENV)
        await asyncio.sleep(2.0)
    finally:
        producing = False
        await producer

    async def all_stored() -> bool:
        stored = await facts.collection.count_documents({"_id": {"$in": published}})
        return stored == len(published)

    assert await eventually(all_stored, timeout_s=120), "a fact was lost"
    dead = await read_topic(
        settings.kafka_bootstrap, dead_letter_topic(topic), count=1, timeout_s=3
    )
    print(  # the figures of docs/reliability.md
        f"consumer during store outages: outages=2x{OUTAGE_S:.0f}s published={len(published)} "
        f"stored={await facts.collection.count_documents({})} dead_lettered={len(dead)}"
    )
    assert dead == [], [dict(r.headers) for r in dead[:3]]
    assert await facts.collection.count_documents({}) == len(published)
