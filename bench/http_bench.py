"""HTTP: the Loket's case intake at 10 concurrent clients; 200 concurrent bridging
approvals against one budget (checked afterwards: nothing overdrawn).

The register of this run knows the submitting organisation (created over its HTTP API;
the Loket learns it from the register's changelog topic, as in production). Ready
applications are written straight into the overbruggingsprocedure's database in the shape
its repository writes (as its own integration test does), so the figure is the approvals.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from decimal import Decimal
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from stack import Row, Run, Service, aggregate_fields, bearer, start_groups_at_end

from pmm_contracts.topics import LET_ESCALATIONS, LOKET_CASES, OVERBRUGGING_APPLICATIONS
from pmm_overbrugging.domain.model import CONDITIONS, Application

GET_BY_ID_SAMPLES = 50


def pct(samples: list[float], q: int) -> float:
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=100)[q - 1]


def submission(org: str, n: int) -> dict[str, Any]:
    return {
        "submitter_kind": "municipality",
        "household": {"reference": f"hh-bench-{n}", "adults": 1, "children": 2},
        "life_domains": ["debts", "housing"],
        "bottlenecks": [{"type": "cooperation"}],
        "organisations_involved": [org],
        "tried_locally": "wijkteam and schuldhulp for months",
        "question": "who pays the rent arrears while the benefit restarts?",
        "urgency": "none",
        "legal_basis": "consent",
    }


async def register_org(run: Run, register: Service, org: str) -> None:
    admin = bearer("pmm", "register_admin")
    async with httpx.AsyncClient(base_url=register.base, timeout=60) as client:
        r = await client.post(
            "/v1/organisations",
            headers=admin,
            json={
                "code": org,
                "name": org.upper(),
                "kind": "municipality",
                "joined_on": "2024-01-01",
            },
        )
        assert r.status_code in (201, 409), r.text
        r = await client.post(
            "/v1/professionals",
            headers=admin,
            json={
                "id": f"mp-{org}",
                "organisation": org,
                "name": f"Professional {org}",
                "roles": ["maatwerk_professional"],
                "email": f"mp-{org}@example.nl",
            },
        )
        assert r.status_code in (201, 409), r.text


async def first_intake(loket: Service, org: str, timeout_s: float = 240) -> float:
    """Submit until the Loket's read model knows ``org``; seconds it took."""
    headers = bearer(org, "maatwerk_professional", subject=f"mp-{org}")
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=loket.base, timeout=60) as client:
        while time.perf_counter() - started < timeout_s:
            r = await client.post("/v1/cases", headers=headers, json=submission(org, 0))
            if r.status_code == 201:
                return time.perf_counter() - started
            if r.status_code != 403:  # 403: the read model does not know it yet
                raise RuntimeError(f"intake refused: {r.status_code} {r.text[:300]}")
            await asyncio.sleep(1)
    raise RuntimeError(f"the Loket did not learn {org} in {timeout_s} s:\n{loket.tail()}")


async def intake(run: Run, loket: Service, org: str) -> Row:
    per_client = 10 if run.quick else 30
    headers = bearer(org, "maatwerk_professional", subject=f"mp-{org}")
    samples: list[float] = []
    errors: list[str] = []
    base_samples: list[float] = []
    async with httpx.AsyncClient(base_url=loket.base, timeout=120) as client:
        health = []
        for _ in range(GET_BY_ID_SAMPLES):
            t = time.perf_counter()
            await client.get("/healthz")
            health.append((time.perf_counter() - t) * 1000)
        # the baseline of the same run: one case read by id, 10 concurrent clients
        created = await client.post("/v1/cases", headers=headers, json=submission(org, 1))
        case_id = created.json()["id"]

        async def reader() -> None:
            for _ in range(per_client):
                t = time.perf_counter()
                await client.get(f"/v1/cases/{case_id}", headers=headers)
                base_samples.append((time.perf_counter() - t) * 1000)

        await asyncio.gather(*[reader() for _ in range(10)])

        async def submitter(c: int) -> None:
            for i in range(per_client):
                t = time.perf_counter()
                r = await client.post(
                    "/v1/cases", headers=headers, json=submission(org, c * 1000 + i)
                )
                samples.append((time.perf_counter() - t) * 1000)
                if r.status_code != 201:
                    errors.append(f"{r.status_code} {r.text[:200]}")

        started = time.perf_counter()
        await asyncio.gather(*[submitter(c) for c in range(10)])
        took = time.perf_counter() - started
    print(f"  intake: {len(samples)} in {took:.1f} s, p99 {pct(samples, 99):.0f} ms")
    return {
        "figure": f"loket POST /v1/cases, 10 concurrent clients ({len(samples)} cases)",
        "value": f"p50 {pct(samples, 50):.0f} / p99 {pct(samples, 99):.0f} ms",
        "baseline": f"GET /v1/cases/{{id}} at 10 concurrent: p50 {pct(base_samples, 50):.0f} / "
        f"p99 {pct(base_samples, 99):.0f} ms; /healthz p50 {pct(health, 50):.1f} ms",
        "target": "p99 <= 200 ms",
        "met": pct(samples, 99) <= 200 and not errors,
        "note": (f"{len(errors)} failed: {errors[0]}" if errors else f"{took:.1f} s in all"),
    }


async def approvals(run: Run, bridging: Service) -> Row:
    n, budget_cents, amount = 200, 150 * 100_00, Decimal("100.00")
    year = 2045
    holder = bearer("pmm", "budget_holder", subject="bh-bench")
    client_db: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(run.store.url)
    db = client_db[bridging.database]
    ids = [f"bench-{run.run_id}-{i}" for i in range(n)]
    from datetime import UTC, datetime

    today = datetime.now(UTC).date()
    documents = []
    for i, application_id in enumerate(ids):
        a = Application(
            id=application_id,
            case_id=f"c-{run.run_id}-{i}",
            case_number="LMM-2026-0001",
            request_id=f"r-{run.run_id}-{i}",
            provision="beschermd wonen",
            provider="Zorgaanbieder Noord",
            estimated_cents=100_00,
            candidate_payers=["gm0363", "vws"],
            received_on=today,
        )
        a.conditions = {name: {"met": True, "note": None} for name in CONDITIONS}
        documents.append(
            {
                **aggregate_fields(a),
                "_id": a.id,
                "_version": 1,
                "_outbox": [],
                "_applied": [],
                "_audit": [],
            }
        )
    await db.applications.insert_many(documents)
    await client_db.close()
    samples: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=bridging.base, timeout=300, limits=limits) as client:
        r = await client.put(
            f"/v1/budgets/{year}", headers=holder, json={"total": f"{budget_cents / 100:.2f}"}
        )
        assert r.status_code == 200, r.text
        t = time.perf_counter()
        await client.get(f"/v1/budgets/{year}", headers=holder)
        budget_read_ms = (time.perf_counter() - t) * 1000

        async def approve(application_id: str) -> None:
            t = time.perf_counter()
            r = await client.post(
                f"/v1/applications/{application_id}/decision",
                headers=holder,
                json={
                    "command_id": f"approve-{application_id}",
                    "approve": True,
                    "form": "advance",
                    "amount": str(amount),
                    "budget_year": year,
                },
            )
            samples.append((time.perf_counter() - t) * 1000)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*[approve(i) for i in ids])
        took = time.perf_counter() - started
        figures = (await client.get(f"/v1/budgets/{year}", headers=holder)).json()
    approved = statuses.get(200, 0)
    expected = budget_cents // 100_00
    available = Decimal(figures.get("available", "-1"))
    sound = available >= 0 and approved == expected and figures.get("ledger_consistent") is True
    print(f"  approvals: {statuses} in {took:.1f} s, budget {figures}")
    return {
        "figure": f"{n} concurrent overbrugging approvals (budget for {expected})",
        "value": f"p50 {pct(samples, 50):.0f} / p99 {pct(samples, 99):.0f} ms",
        "baseline": f"GET /v1/budgets/{year} alone: {budget_read_ms:.0f} ms",
        "target": "p99 <= 3 s, nothing overdrawn",
        "met": pct(samples, 99) <= 3000 and sound,
        "note": f"statuses {dict(sorted(statuses.items()))}; available {figures.get('available')}, "
        f"committed {figures.get('committed')}, ledger consistent "
        f"{figures.get('ledger_consistent')}: {'sound' if sound else 'NOT SOUND'}",
    }


async def skip_history(run: Run, loket: Service | None, bridging: Service) -> None:
    """The services of this run read the topics the figures do not need from their end:
    their history is earlier runs' and tests' (thousands of events for unknown cases and
    applications, each a store read), which would otherwise be replayed while the intake
    and the approvals are measured, and cost more every day the broker keeps it."""
    groups = {f"{bridging.env['PMM_GROUP_PREFIX']}.overbrugging.bridging-requests": LOKET_CASES}
    if loket is not None:
        prefix = loket.env["PMM_GROUP_PREFIX"]
        groups[f"{prefix}.loket.bridging"] = OVERBRUGGING_APPLICATIONS
        groups[f"{prefix}.loket.escalations"] = LET_ESCALATIONS
    await start_groups_at_end(run.bootstrap, groups)


async def bench(run: Run) -> list[Row]:
    org = f"gb{run.run_id}"
    register = run.service("register")
    loket = run.service("loket")
    bridging = run.service("overbrugging", PMM_OUTBOX_POLL_INTERVAL_S="30")
    await skip_history(run, loket, bridging)
    for svc in (register, loket, bridging):
        svc.start()
    try:
        for svc in (register, loket, bridging):
            await svc.ready()
        await register_org(run, register, org)
        learned = await first_intake(loket, org)
        print(f"  the Loket knew {org} after {learned:.1f} s")
        rows = [await intake(run, loket, org), await approvals(run, bridging)]
    finally:
        for svc in (register, loket, bridging):
            svc.stop()
    return rows


async def approvals_only(run: Run) -> list[Row]:
    """The approvals alone (they need no register): ``--only approvals``."""
    bridging = run.service("overbrugging", "a", PMM_OUTBOX_POLL_INTERVAL_S="30")
    await skip_history(run, None, bridging)
    bridging.start()
    try:
        await bridging.ready()
        return [await approvals(run, bridging)]
    finally:
        bridging.stop()
