"""Signalen: evaluated cases in, signals out on an organisation's own topic.

A plain aiokafka producer publishes ``nl.maatwerk.case.evaluated`` events (two learning
points each, both assigned to one organisation of this run) on a case topic of this run
(the service's ``PMM_CASES_TOPIC``); a plain consumer counts the signals arriving on
``pmm.signalen.assigned.<org>``. The baseline is a raw aiokafka loop over the same events
doing the same store writes (one case upsert, per learning point one signal document and
one figures document) and publishing the same number of records with ``acks=all``.
"""

from __future__ import annotations

import asyncio
import io
import json
import pstats
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient
from stack import ROOT, RUN_DIR, Row, Run, Service, commands_per_event, cpu_seconds, kafka

from pmm_contracts import encode_event, new_event
from pmm_contracts.cli import provision
from pmm_contracts.events.cases import Bottleneck, CaseEvaluated, CaseOutcome, LearningPoint
from pmm_contracts.events.signals import SignalAssigned
from pmm_contracts.topics import org_topics, signals_assigned_topic
from pmm_contracts.vocabulary import BottleneckType, LearningOrder, LifeDomain, SubmitterKind
from pmm_runtime.testing import create_topics

LOKET = "urn:nld:oin:00000001234567890000:systeem:loket"
POINTS = 2


def letters(n: int) -> str:
    """``n`` spelled in letters (a=0 ... j=9): a free text with digits may look like a BSN
    to the contract's privacy check."""
    return "".join(chr(ord("a") + int(d)) for d in str(n))


def number(word: str) -> int:
    return int("".join(str(ord(c) - ord("a")) for c in word))


def evaluation(run: str, org: str, n: int) -> bytes:
    closed = datetime.now(UTC)
    data = CaseEvaluated(
        case_id=f"bench-{run}-{n}",
        case_number=f"LMM-2026-{n:06d}",
        submitter_kind=SubmitterKind.MUNICIPALITY,
        submitting_organisation="gm0363",
        life_domains=(LifeDomain.DEBTS, LifeDomain.HOUSING),
        bottlenecks=(Bottleneck(type=BottleneckType.COOPERATION),),
        outcome=CaseOutcome.SOLVED,
        submitted_at=closed - timedelta(days=40),
        closed_at=closed,
        duration_days=40,
        learning_points=tuple(
            LearningPoint(
                id=f"lp{k}",
                order=LearningOrder.SECOND,
                bottleneck=Bottleneck(type=BottleneckType.COOPERATION),
                organisations=(org,),
                description=f"bench lesson {letters(n)} {letters(k)}",
            )
            for k in range(POINTS)
        ),
    )
    return encode_event(new_event(data, subject=data.case_id, source=LOKET))


class Arrivals:
    """A plain consumer of an organisation's signal topic: arrival time per event number."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(
            topic,
            **kafka(bootstrap),
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.seen: dict[int, list[float]] = {}
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    body = json.loads(record.value)
                    if body.get("type") != SignalAssigned.EVENT_TYPE:
                        continue
                    words = body["data"]["description"].split()
                    if words[:2] == ["bench", "lesson"]:
                        self.seen.setdefault(number(words[2]), []).append(now)

    def complete(self, numbers: range) -> int:
        return sum(1 for n in numbers if len(self.seen.get(n, ())) >= POINTS)

    async def wait(self, numbers: range, timeout_s: float) -> bool:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            if self.complete(numbers) == len(numbers):
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.consumer.stop()


async def producer(bootstrap: str) -> AIOKafkaProducer:
    p = AIOKafkaProducer(**kafka(bootstrap), acks="all", enable_idempotence=True, linger_ms=5)
    await p.start()
    return p


async def burst(
    bootstrap: str, topic: str, arrivals: Arrivals, make: Callable[[int], bytes], numbers: range
) -> tuple[float, int]:
    """Publish ``numbers`` at once; seconds from the first send to the last signal."""
    p = await producer(bootstrap)
    try:
        started = time.perf_counter()
        sends = [await p.send(topic, make(n), key=f"k{n}".encode()) for n in numbers]
        await asyncio.gather(*sends)
    finally:
        await p.stop()
    timeout = 60 + len(numbers) * 0.5
    await arrivals.wait(numbers, timeout)
    done = arrivals.complete(numbers)
    last = max((max(arrivals.seen[n]) for n in numbers if n in arrivals.seen), default=started)
    return last - started, done


async def steady(
    bootstrap: str,
    topic: str,
    arrivals: Arrivals,
    make: Callable[[int], bytes],
    numbers: range,
    rate: float,
) -> list[float]:
    """Publish ``numbers`` at ``rate`` per second; publish→arrival of each signal, ms."""
    p = await producer(bootstrap)
    sent: dict[int, float] = {}
    try:
        begin = time.perf_counter()
        for i, n in enumerate(numbers):
            await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
            sent[n] = time.perf_counter()
            await p.send_and_wait(topic, make(n), key=f"k{n}".encode())
    finally:
        await p.stop()
    await arrivals.wait(numbers, 60 + len(numbers) * 0.2)
    return [(t - sent[n]) * 1000 for n in numbers for t in arrivals.seen.get(n, [])]


async def raw_loop(
    bootstrap: str, topic: str, url: str, database: str, out_topic: str, stop: asyncio.Event
) -> None:
    """The baseline: consume, write what the service writes, publish, commit."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    db = client[database]
    consumer = AIOKafkaConsumer(
        topic,
        **kafka(bootstrap),
        group_id=f"raw-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    p = await producer(bootstrap)
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for record in records:
                    event = json.loads(record.value)
                    data = event["data"]
                    await db.cases.update_one(
                        {"_id": data["case_id"]},
                        {"$set": {"case_number": data["case_number"], "evaluated": True}},
                        upsert=True,
                    )
                    for point in data["learning_points"]:
                        signal_id = str(uuid.uuid5(uuid.UUID(event["id"]), point["id"]))
                        body = {
                            "signal_id": signal_id,
                            "organisation": point["organisations"][0],
                            "order": point["order"],
                            "bottleneck": point["bottleneck"],
                            "description": point["description"],
                            "respond_by": "2027-01-01",
                        }
                        await db.signals.insert_one({"_id": signal_id, **body, "_version": 1})
                        await db.figures.insert_one({"_id": f"{signal_id}:fig", "count": 1})
                        out = {"type": SignalAssigned.EVENT_TYPE, "data": body}
                        await p.send_and_wait(
                            out_topic, json.dumps(out).encode(), key=signal_id.encode()
                        )
                await consumer.commit()
    finally:
        await consumer.stop()
        await p.stop()
        await client.close()


def show_profile(path: Path, top: int = 30) -> None:
    """Where the service's time went: the functions with the most own time, and the
    store and broker calls by cumulative time."""
    if not path.exists():
        print(f"  no profile at {path} (the service did not exit cleanly)")
        return
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(r"pymongo|aiokafka|changes|outbox|usecases", top)
    print(f"  profile of the signalen process ({path.relative_to(ROOT)}):")
    for line in out.getvalue().splitlines():
        if line.strip():
            print(f"    {line}")


def pct(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100)[q - 1]


async def signalen_instance(run: Run, tag: str, cases_topic: str, org: str) -> Service:
    svc = run.service(
        "signalen",
        tag,
        PMM_CASES_TOPIC=cases_topic,
        PMM_RESPONSES_PATTERN=rf"^pmm\.signalen\.responses\.{org}$",
    )
    return svc


async def warm_up(run: Run, topic: str, arrivals: Arrivals, make: Callable[[int], bytes]) -> None:
    """A few events first, so the group has joined and the topics exist."""
    numbers = range(1_000_000, 1_000_005)
    await burst(run.bootstrap, topic, arrivals, make, numbers)


async def bench(run: Run) -> list[Row]:
    rows: list[Row] = []
    n_burst = 200 if run.quick else 2000
    n_steady = 200 if run.quick else 1200
    org = f"bs{run.run_id}"
    raw_org = f"br{run.run_id}"
    for o in (org, raw_org):
        await provision(run.bootstrap, list(org_topics(o)))
    cases_topic = f"bench.{run.run_id}.cases"
    raw_topic = f"bench.{run.run_id}.rawcases"
    await create_topics(run.bootstrap, [cases_topic, raw_topic])

    # Baseline: the raw loop, same events, same writes.
    stop = asyncio.Event()
    raw_arrivals = Arrivals(run.bootstrap, signals_assigned_topic(raw_org))
    await raw_arrivals.start()
    loop_task = asyncio.create_task(
        raw_loop(
            run.bootstrap,
            raw_topic,
            run.store.url,
            f"bench_raw_{run.run_id}",
            signals_assigned_topic(raw_org),
            stop,
        )
    )
    raw_make = lambda n: evaluation(run.run_id, raw_org, n)  # noqa: E731
    try:
        await warm_up(run, raw_topic, raw_arrivals, raw_make)
        raw_before = run.store.commands()
        raw_s, raw_done = await burst(
            run.bootstrap, raw_topic, raw_arrivals, raw_make, range(n_burst)
        )
        raw_commands = commands_per_event(raw_before, run.store.commands(), raw_done)
        raw_rate = raw_done / raw_s
        raw_lat = await steady(
            run.bootstrap,
            raw_topic,
            raw_arrivals,
            raw_make,
            range(n_burst, n_burst + n_steady),
            20.0,
        )
    finally:
        stop.set()
        await loop_task
        await raw_arrivals.stop()
    print(f"  raw loop: {raw_done}/{n_burst} events in {raw_s:.1f} s = {raw_rate:.0f}/s")
    print(f"  raw loop: {raw_commands}")

    # The service.
    svc = await signalen_instance(run, "", cases_topic, org)
    profile = RUN_DIR / f"{run.run_id}-signalen.prof"
    if run.profile:  # the same entry point under cProfile (written at its clean exit)
        entry = str(ROOT / ".venv" / "bin" / "pmm-signalen")
        svc.argv = [sys.executable, "-m", "cProfile", "-o", str(profile), entry]
    svc.start()
    await svc.ready()
    arrivals = Arrivals(run.bootstrap, signals_assigned_topic(org))
    await arrivals.start()
    make = lambda n: evaluation(run.run_id, org, n)  # noqa: E731
    try:
        await warm_up(run, cases_topic, arrivals, make)
        before = run.store.commands()
        store_profile = (
            asyncio.create_task(
                asyncio.to_thread(
                    run.store.cpu_profile,
                    5 if run.quick else 10,
                    RUN_DIR / f"{run.run_id}-store.pprof",
                )
            )
            if run.profile
            else None
        )
        took, done = await burst(run.bootstrap, cases_topic, arrivals, make, range(n_burst))
        rate = done / took
        spent = commands_per_event(before, run.store.commands(), done)
        print(f"  signalen: {done}/{n_burst} events in {took:.1f} s = {rate:.1f}/s")
        print(f"  signalen: {spent}")
        if store_profile is not None:
            print("  the store's CPU profile during the burst (go tool pprof -top):")
            for line in (await store_profile).splitlines():
                print(f"    {line}")
        if done < n_burst:  # the steady run starts on a drained topic
            drained = await arrivals.wait(range(n_burst), 180)
            print(f"  burst drained {'after all' if drained else 'NOT even after 180 s more'}")
        lat = await steady(
            run.bootstrap, cases_topic, arrivals, make, range(n_burst, n_burst + n_steady), 20.0
        )
        print(f"  steady 20/s: {len(lat)} signals, p99 {pct(lat, 99):.0f} ms")
    finally:
        await arrivals.stop()
        svc.stop()
    if run.profile:
        show_profile(profile)
    failed = "" if done == n_burst else f"; only {done} of {n_burst} arrived in time"
    rows.append(
        {
            "figure": f"signalen burst of {n_burst} case.evaluated (2 learning points each)",
            "value": f"{rate:.1f} events/s",
            "baseline": f"raw aiokafka loop, same writes: {raw_rate:.0f} events/s",
            "target": ">= 300 events/s",
            "met": rate >= 300,
            "note": f"{took:.1f} s for the burst{failed}; {spent}; raw loop: {raw_commands}",
        }
    )
    rows.append(
        {
            "figure": "signalen / raw loop (same events, same store writes)",
            "value": f"{raw_rate / rate:.1f}x slower" if rate else "n/a",
            "baseline": f"raw {raw_rate:.0f}/s vs service {rate:.1f}/s",
            "target": "service within 1.5x of raw",
            "met": rate > 0 and raw_rate / rate <= 1.5,
            "note": "",
        }
    )
    missing = n_steady * POINTS - len(lat)
    rows.append(
        {
            "figure": f"signalen publish→arrival at a steady 20/s ({n_steady} events)",
            "value": f"p50 {pct(lat, 50):.0f} / p95 {pct(lat, 95):.0f} / p99 {pct(lat, 99):.0f} ms",
            "baseline": f"raw loop: p50 {pct(raw_lat, 50):.0f} / p95 {pct(raw_lat, 95):.0f} / "
            f"p99 {pct(raw_lat, 99):.0f} ms",
            "target": "p99 <= 250 ms",
            "met": pct(lat, 99) <= 250 and missing == 0,
            "note": f"{missing} signals missing after the wait" if missing else "",
        }
    )
    return rows


async def scale(run: Run) -> list[Row]:
    """One instance against two (one consumer group, shared database) on 6 partitions."""
    n = 200 if run.quick else 1000
    rates: dict[int, float] = {}
    busy: dict[int, str] = {}  # CPU of the store and of the instances during the burst
    for instances in (1, 2):
        org = f"s{instances}{run.run_id}"
        await provision(run.bootstrap, list(org_topics(org)))
        topic = f"bench.{run.run_id}.scale{instances}"
        await create_topics(run.bootstrap, [topic], partitions=6)
        first = await signalen_instance(run, f"x{instances}", topic, org)
        procs = [first]
        for _ in range(instances - 1):
            twin = Service(
                "signalen",
                0,
                first.database,
                dict(first.env),
                first.log_path.with_suffix(".twin.log"),
            )
            from stack import free_port

            twin.port = free_port()
            twin.env["PMM_HTTP_PORT"] = str(twin.port)
            run.services.append(twin)
            procs.append(twin)
        for p in procs:
            p.start()
        for p in procs:
            await p.ready()
        arrivals = Arrivals(run.bootstrap, signals_assigned_topic(org))
        await arrivals.start()
        make = lambda i, org=org: evaluation(run.run_id, org, i)  # noqa: E731
        try:
            # warm-up across all 6 partitions, so both members have their assignment
            await burst(run.bootstrap, topic, arrivals, make, range(1_000_000, 1_000_012))
            pids: dict[str, int] = {}
            if run.store.pid:
                pids["store"] = run.store.pid
            pids.update({f"signalen {k + 1}": p.pid for k, p in enumerate(procs)})
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            took, done = await burst(run.bootstrap, topic, arrivals, make, range(n))
            rates[instances] = done / took
            busy[instances] = ", ".join(
                f"{name} {100 * (cpu_seconds(pid) - before[name]) / took:.0f}%"
                for name, pid in pids.items()
            )
            print(
                f"  {instances} instance(s): {done}/{n} in {took:.1f} s = {rates[instances]:.1f}/s"
                f" (CPU of a core during the burst: {busy[instances]})"
            )
        finally:
            await arrivals.stop()
            for p in procs:
                p.stop()
    ratio = rates[2] / rates[1] if rates[1] else float("nan")
    return [
        {
            "figure": f"signalen, two instances / one (burst of {n}, 6 partitions)",
            "value": f"{ratio:.2f}x",
            "baseline": f"one: {rates[1]:.1f}/s ({busy.get(1, '?')}); "
            f"two: {rates[2]:.1f}/s ({busy.get(2, '?')})",
            "target": ">= 1.7x (or a profile showing the store is the limit)",
            "met": ratio >= 1.7,
            "note": "both instances share the one store process (its CPU during each burst "
            "beside the instances': the store near 100% of its core is the limit)",
        }
    ]
