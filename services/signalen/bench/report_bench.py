"""Benchmark (not a test): the yearly report over N cases on the local stack.

    uv run python services/signalen/bench/report_bench.py [--cases 100000] [--signals-per-case 1.5]

Generates N closed, evaluated cases of one year (and about ``signals-per-case`` signals
each, every assignment answered), computes the yearly-figure deltas they cause with the
service's own pure functions (``domain/figures.py``), loads the year's bucket documents
(counters, and a marker per applied delta, as the projector leaves them since decision 0011) and the
measure examples in bulk into a throwaway database, then times ``yearly_report`` and the
HTML rendering and prints the seconds. Target: <= 5 s for 100,000 cases.

With ``--through-projector`` the deltas are applied one by one by the real projector
instead (slow to load on FerretDB; for smaller N, to check both ways give the same report).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pmm_contracts.events.cases import Bottleneck, CaseEvaluated, CaseOutcome, LearningPoint
from pmm_contracts.events.signals import ResponseStatus
from pmm_contracts.vocabulary import (
    BottleneckType,
    LearningOrder,
    LifeDomain,
    SubmitterKind,
)
from pmm_runtime.mongo import create_client
from pmm_runtime.testing import Infra, local_infra
from pmm_signalen.adapters.figures import YearlyFigures, applied_key
from pmm_signalen.domain.figures import Delta, case_delta, follow_up_counts, signal_delta
from pmm_signalen.domain.model import Signal
from pmm_signalen.service import render
from pmm_signalen.service.report import yearly_report

YEAR = 2031
ORGS = ["uwv", "svb", "duo", "cak", "cjib", "szw", "bzk", "vws", "toeslagen"] + [
    f"gm{n:04d}" for n in range(1, 60)
]


def generate(n: int, rng: random.Random, per_case: float) -> list[Delta]:
    """The figure deltas one generated case causes: its evaluation (with its signals'
    creation) and each organisation's answer."""
    closed = datetime(YEAR, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(525_000))
    duration = rng.randint(14, 140)
    domains = rng.sample(list(LifeDomain), rng.randint(1, 4))
    bottlenecks = sorted(
        {Bottleneck(type=t) for t in rng.sample(list(BottleneckType), rng.randint(1, 2))},
        key=lambda b: b.type,
    )
    count = int(per_case) + (1 if rng.random() < per_case % 1 else 0)
    points = tuple(
        LearningPoint(
            id=f"lp{k}",
            order=rng.choice(list(LearningOrder)),
            bottleneck=rng.choice(bottlenecks),
            organisations=tuple(rng.sample(ORGS, rng.randint(1, 2))),
            regulation_reference=rng.choice([None, "Participatiewet art. 18", "Wmo 2015 2.3.5"]),
            description="generated lesson for the benchmark",
        )
        for k in range(count)
    )
    evaluation = CaseEvaluated(
        case_id=f"case-{n}",
        case_number=f"LMM-{YEAR}-{n:06d}",
        submitter_kind=rng.choice(list(SubmitterKind)),
        submitting_organisation="gm0001",
        life_domains=tuple(domains),
        bottlenecks=tuple(bottlenecks),
        outcome=rng.choice(list(CaseOutcome)),
        submitted_at=closed - timedelta(days=duration),
        closed_at=closed,
        duration_days=duration,
        learning_points=points,
    )
    signals = [
        Signal.from_learning_point(evaluation, uuid.UUID(int=n + 1), p, at=closed, term_days=42)[0]
        for p in points
    ]
    deltas = [case_delta(evaluation, signals)]  # with each signal's first follow-up status
    for signal in signals:
        version = 1
        for org in list(signal.organisations):
            status = rng.choice([s for s in ResponseStatus if s is not ResponseStatus.FORWARDED])
            needs_text = status in (ResponseStatus.MEASURE_TAKEN, ResponseStatus.NO_ACTION)
            before = follow_up_counts(signal)
            signal.answer(
                org,
                status,
                "generated measure" if needs_text else None,
                None,
                at=closed,
                term_days=42,
                via="kafka",
            )
            version += 1
            changed = signal_delta(before, signal, f"{signal.id}:v{version}")
            deltas.append(changed) if changed else None
    return deltas


async def main(infra: Infra, cases: int, per_case: float, through_projector: bool) -> None:
    client = create_client(infra.mongodb_url, app_name="pmm-signalen-bench")
    db = client[f"bench_signalen_{uuid.uuid4().hex[:8]}"]
    figures = YearlyFigures(db["figures"], db["measures"], [])
    rng = random.Random(7)
    try:
        await figures.create_indexes()
        started = time.perf_counter()
        buckets: dict[str, dict[str, Any]] = {}
        measures: dict[str, dict[str, Any]] = {}
        markers: list[dict[str, Any]] = []
        n_deltas = 0
        for n in range(cases):
            for delta in generate(n, rng, per_case):
                n_deltas += 1
                if through_projector:
                    await figures.apply(delta)
                    continue
                bucket_id = f"{delta['year']}:{delta['bucket']:02d}"
                bucket = buckets.setdefault(
                    bucket_id,
                    {"_id": bucket_id, "year": delta["year"], "counts": {}, "_inflight": []},
                )
                for key, value in delta["counts"].items():
                    bucket["counts"][key] = bucket["counts"].get(key, 0) + value
                markers.append({"_id": applied_key(delta["id"])})
                for example in delta["examples"]:
                    measures.setdefault(
                        bucket_id,
                        {"_id": bucket_id, "year": delta["year"], "delta": delta["id"], **example},
                    )
        if buckets:
            await figures.figures.insert_many([{**b, "_v": 1} for b in buckets.values()])
        for start in range(0, len(markers), 1000):
            await figures.markers.insert_many(markers[start : start + 1000], ordered=False)
        if measures:
            await figures.measures.insert_many(list(measures.values()))
        how = "through the projector" if through_projector else "in bulk"
        print(
            f"loaded {cases} cases ({n_deltas} figure deltas) {how} "
            f"in {time.perf_counter() - started:.1f} s"
        )
        for run in range(3):
            started = time.perf_counter()
            report = await yearly_report(figures, YEAR)
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
    parser.add_argument("--through-projector", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(local_infra(), args.cases, args.signals_per_case, args.through_projector))
