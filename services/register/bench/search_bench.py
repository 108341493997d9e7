"""Benchmark (not a test): search latency over N professionals on the local stack.

    uv run python services/register/bench/search_bench.py [--professionals 50000]
        [--queries 300] [--store-queries 30]

Loads N generated professionals into a throwaway database (directly through the
repository's document mapping, in bulk) and into a replica's in-memory search index (as
its changelog replay would), then times the repository's search (what the search use case
calls after its access check) for a mix of queries
(organisation + role, life domain + organisation, tag, free text) and prints p50/p95/p99
in milliseconds: served by the index (what a ready replica does), served by the store (what
a replica does before its index is ready), and a primary-key lookup in the store as the
baseline of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date

from pmm_contracts.vocabulary import LifeDomain, Role
from pmm_register.adapters.repository import Professionals
from pmm_register.adapters.search_index import Filters, SearchIndex
from pmm_register.domain.model import Professional, search_terms
from pmm_runtime.mongo import create_client
from pmm_runtime.outbox import AggregateStore
from pmm_runtime.testing import Infra, admin_connection, create_topics, eventually, local_infra

ORGS = [f"gm{n:04d}" for n in range(1, 301)] + ["uwv", "svb", "duo", "cak", "cjib"]
WORDS = [
    "klantmanager",
    "consulent",
    "schuldhulp",
    "wijkteam",
    "jeugd",
    "wmo",
    "inkomen",
    "participatie",
    "handhaving",
    "toeslagen",
    "bijzondere",
    "bijstand",
    "zorg",
]
NAMES = ["de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder"]


def generate(i: int, rng: random.Random) -> Professional:
    return Professional(
        id=f"b-{i}",
        organisation=rng.choice(ORGS),
        name=f"{rng.choice('ABCDEFGHJKLMNPRSTW')}. {rng.choice(NAMES)} {i}",
        email=f"p{i}@bench.example.nl",
        roles=(Role.MAATWERK_PROFESSIONAL,) if rng.random() < 0.9 else (Role.EXECUTIVE,),
        last_verified_on=date(2026, 1, 1),
        function=" ".join(rng.sample(WORDS, 2)),
        life_domains=tuple(rng.sample(list(LifeDomain), 3)),
        tags=tuple(rng.sample(["Participatiewet", "Wmo 2015", "Jeugdwet", "WW", "Zvw"], 2)),
        phone="+31 20 555 0000",
        urgent_phone="+31 6 0000 0000" if rng.random() < 0.3 else None,
    )


async def timed(fn: Callable[[], Awaitable[object]], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(name: str, samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"{name:28} p50 {q[49]:7.2f} ms   p95 {q[94]:7.2f} ms   p99 {q[98]:7.2f} ms"


async def main(
    infra: Infra, professionals: int, queries: int, store_queries: int, replay: bool
) -> None:
    rng = random.Random(42)
    url = infra.mongodb_url
    client = create_client(url, app_name="register-bench")
    db = client[f"bench_register_{uuid.uuid4().hex[:8]}"]
    source = "urn:nld:oin:00000001234567890000:systeem:register"
    repo = Professionals(AggregateStore(db["professionals"]))  # no index: the store answers
    index = SearchIndex()
    indexed = Professionals(repo.store, index)
    try:
        await repo.create_indexes()
        started = time.perf_counter()
        batch = []
        indexing = 0.0
        everyone: list[Professional] = []
        for i in range(professionals):
            p = generate(i, rng)
            everyone.append(p)
            t = time.perf_counter()
            index.apply(p)
            indexing += time.perf_counter() - t
            batch.append(
                {
                    "_id": p.id,
                    **repo.dump(p),
                    "_version": 1,
                    "_outbox": [],
                    "_applied": [],
                    "_audit": [],
                }
            )
            if len(batch) == 1000:
                await repo.collection.insert_many(batch)
                batch = []
        if batch:
            await repo.collection.insert_many(batch)
        print(f"store: {url}")
        print(f"loaded {professionals} professionals in {time.perf_counter() - started:.1f} s")
        index.ready = True
        print(f"index: {len(index)} professionals applied in {indexing:.2f} s")

        def random_query() -> Filters:
            kind = rng.randrange(4)
            if kind == 0:
                return Filters(
                    organisation=rng.choice(ORGS), roles=(Role.MAATWERK_PROFESSIONAL.value,)
                )
            if kind == 1:
                return Filters(
                    life_domain=rng.choice(list(LifeDomain)).value, organisation=rng.choice(ORGS)
                )
            if kind == 2:
                return Filters(tag=rng.choice(["Wmo 2015", "Jeugdwet"]))
            return Filters(terms=tuple(search_terms(rng.choice(NAMES))))

        baseline = await timed(lambda: repo.get(f"b-{rng.randrange(professionals)}"), store_queries)
        searches = await timed(lambda: indexed.search(random_query(), skip=0, limit=20), queries)
        from_store = await timed(
            lambda: repo.search(random_query(), skip=0, limit=20), store_queries
        )
        print(summary("baseline (store get by id)", baseline))
        print(summary("search, index (ready)", searches))
        print(summary("search, store (not ready)", from_store))
        q95 = statistics.quantiles(searches, n=100)[94]
        b95 = statistics.quantiles(baseline, n=100)[94]
        s95 = statistics.quantiles(from_store, n=100)[94]
        print(
            f"index search p95 / store get-by-id p95 = {q95 / b95:.2f}x; "
            f"/ store search p95 = {q95 / s95:.4f}x; target p95 <= 20 ms: "
            f"{'met' if q95 <= 20 else 'NOT met'}"
        )
        if replay:
            await time_replay(infra.kafka_bootstrap, everyone, source)
    finally:
        await client.drop_database(db.name)
        await client.close()


async def time_replay(bootstrap: str, everyone: list[Professional], source: str) -> None:
    """Publish every entry's state to a throwaway topic and time a fresh index's replay."""
    from aiokafka import AIOKafkaProducer

    from pmm_contracts import encode_event, new_event

    topic = f"bench.register.professionals.{uuid.uuid4().hex[:8]}"
    await create_topics(bootstrap, [topic])
    producer = AIOKafkaProducer(**admin_connection(bootstrap).kwargs(), acks="all", linger_ms=20)
    await producer.start()
    try:
        sends = [
            await producer.send(
                topic,
                encode_event(new_event(p.state(), subject=p.id, source=source)),
                key=p.id.encode(),
            )
            for p in everyone
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    fresh, stop = SearchIndex(), asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(fresh.follow(admin_connection(bootstrap), topic, stop))
    await eventually(lambda: fresh.ready, timeout_s=900, interval_s=0.05)
    print(
        f"replay: a fresh index read {len(fresh)} entries from Kafka and was ready in "
        f"{time.perf_counter() - started:.1f} s"
    )
    stop.set()
    await task


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--professionals", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--store-queries", type=int, default=30)
    parser.add_argument(
        "--replay", action="store_true", help="also time a fresh index replaying from Kafka"
    )
    args = parser.parse_args()
    asyncio.run(
        main(local_infra(), args.professionals, args.queries, args.store_queries, args.replay)
    )
