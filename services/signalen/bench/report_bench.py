"""Benchmark (not a test): the yearly report over N cases on the local stack.

    uv run python services/signalen/bench/report_bench.py [--cases 100000] [--signals-per-case 1.5]

Loads N generated closed cases of one year (and about ``signals-per-case`` signals each,
with their assignments and answers) into a throwaway database, in bulk through the
repository's own document mapping, then times ``yearly_report`` (every aggregation of the
report) and the HTML rendering, and prints the seconds. Target: <= 5 s for 100,000 cases.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pmm_contracts.events.cases import Bottleneck, CaseEvaluated, CaseOutcome, LearningPoint
from pmm_contracts.events.signals import ResponseStatus
from pmm_contracts.vocabulary import (
    BottleneckType,
    LearningOrder,
    LifeDomain,
    SubmitterKind,
)
from pmm_runtime.mongo import create_client
from pmm_runtime.outbox import AggregateStore
from pmm_signalen.adapters.repository import CaseRepository, SignalRepository, signal_fields
from pmm_signalen.domain.model import Signal
from pmm_signalen.service import render
from pmm_signalen.service.report import yearly_report

ROOT = Path(__file__).resolve().parents[3]
YEAR = 2031
ORGS = ["uwv", "svb", "duo", "cak", "cjib", "szw", "bzk", "vws", "toeslagen"] + [
    f"gm{n:04d}" for n in range(1, 60)
]
BATCH = 2_000


def store_url() -> str:
    return (
        os.environ.get("PMM_MONGODB_URL")
        or subprocess.run(  # noqa: S603
            ["bash", str(ROOT / "deploy/local/store.sh"), "url"],  # noqa: S607
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )


def generate(n: int, rng: random.Random, per_case: float) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    closed = datetime(YEAR, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(525_000))
    duration = rng.randint(14, 140)
    domains = rng.sample(list(LifeDomain), rng.randint(1, 4))
    bottlenecks = {Bottleneck(type=t) for t in rng.sample(list(BottleneckType), rng.randint(1, 2))}
    case_id = f"case-{n}"
    case = {
        "_id": case_id,
        "case_number": f"LMM-{YEAR}-{n:06d}",
        "submitter_kind": rng.choice(list(SubmitterKind)).value,
        "life_domains": sorted(d.value for d in domains),
        "bottleneck_types": sorted(b.type.value for b in bottlenecks),
        "outcome": rng.choice(list(CaseOutcome)).value,
        "closed_at": closed.isoformat(),
        "closed_year": YEAR,
        "closed_month": f"{YEAR}-{closed.month:02d}",
        "duration_days": duration,
        "evaluated": True,
    }
    points = [
        LearningPoint(
            id=f"lp{k}",
            order=rng.choice(list(LearningOrder)),
            bottleneck=rng.choice(sorted(bottlenecks, key=lambda b: b.type)),
            organisations=tuple(rng.sample(ORGS, rng.randint(1, 2))),
            regulation_reference=rng.choice([None, "Participatiewet art. 18", "Wmo 2015 2.3.5"]),
            description="generated lesson for the benchmark",
        )
        for k in range(int(per_case) + (1 if rng.random() < per_case % 1 else 0))
    ]
    evaluation = CaseEvaluated(
        case_id=case_id,
        case_number=case["case_number"],
        submitter_kind=SubmitterKind(case["submitter_kind"]),
        submitting_organisation="gm0001",
        life_domains=tuple(domains),
        bottlenecks=tuple(bottlenecks),
        outcome=CaseOutcome(case["outcome"]),
        submitted_at=closed - timedelta(days=duration),
        closed_at=closed,
        duration_days=duration,
        learning_points=tuple(points),
    )
    event_id = uuid.UUID(int=n)
    signals = []
    for point in points:
        signal, _ = Signal.from_learning_point(evaluation, event_id, point, at=closed, term_days=42)
        for org in list(signal.organisations):
            status = rng.choice(list(ResponseStatus))
            if status is ResponseStatus.FORWARDED:
                status = ResponseStatus.IN_PROGRESS
            explanation = (
                "generated measure" if status.value in ("measure_taken", "no_action") else None
            )
            signal.answer(org, status, explanation, None, at=closed, term_days=42, via="kafka")
        signals.append({**signal_fields(signal), "_id": signal.id, "_version": 1})
    return case, signals


async def main(cases: int, per_case: float) -> None:
    client = create_client(store_url(), app_name="pmm-signalen-bench")
    db = client[f"bench_signalen_{uuid.uuid4().hex[:8]}"]
    case_repo = CaseRepository(db["cases"])
    signal_repo = SignalRepository(AggregateStore(db["signals"]))
    rng = random.Random(7)
    try:
        await case_repo.create_indexes()
        await signal_repo.create_indexes()
        started = time.perf_counter()
        case_batch: list[dict] = []  # type: ignore[type-arg]
        signal_batch: list[dict] = []  # type: ignore[type-arg]
        n_signals = 0
        for n in range(cases):
            case, signals = generate(n, rng, per_case)
            case_batch.append(case)
            signal_batch.extend(signals)
            if len(case_batch) >= BATCH:
                await case_repo.insert_many(case_batch)
                await signal_repo.collection.insert_many(signal_batch, ordered=False)
                n_signals += len(signal_batch)
                case_batch, signal_batch = [], []
        if case_batch:
            await case_repo.insert_many(case_batch)
        if signal_batch:
            await signal_repo.collection.insert_many(signal_batch, ordered=False)
            n_signals += len(signal_batch)
        print(f"loaded {cases} cases, {n_signals} signals in {time.perf_counter() - started:.1f} s")
        for run in range(2):
            started = time.perf_counter()
            report = await yearly_report(case_repo, signal_repo, YEAR)
            computed = time.perf_counter() - started
            page = render.to_html(report)
            rendered = time.perf_counter() - started
            print(
                f"run {run + 1}: report over {report['cases_closed']} cases: "
                f"{computed:.2f} s (with HTML: {rendered:.2f} s, {len(page) // 1024} KiB)"
            )
    finally:
        await client.drop_database(db.name)
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--signals-per-case", type=float, default=1.5)
    args = parser.parse_args()
    asyncio.run(main(args.cases, args.signals_per_case))
