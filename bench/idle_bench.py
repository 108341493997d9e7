"""Idle CPU of the store and of each service, with few documents and with many.

The five services run on databases of this run. Few: 100 cases, 100 applications and 100
professionals; many: 10,000 / 10,000 / 50,000 (full mode; a tenth in quick mode). The
documents are copies of one the service itself wrote over its HTTP API (a case, a
professional) or built with its own model and mapping (an application), inserted in bulk.
Each phase starts the services afresh, lets them settle (start-up sweeps, catching up on
the shared topics), then reads /proc/<pid>/stat over the measuring window.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import http_bench
import httpx
from pymongo import AsyncMongoClient
from stack import Row, Run, Service, aggregate_fields, bearer, cpu_seconds

from pmm_overbrugging.domain.model import CONDITIONS, Application

Doc = dict[str, Any]


async def measure(pids: dict[str, int], window_s: float) -> dict[str, float]:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    await asyncio.sleep(window_s)
    return {name: 100 * (cpu_seconds(pid) - before[name]) / window_s for name, pid in pids.items()}


def application(run_id: str, i: int) -> Doc:
    a = Application(
        id=f"idle-{run_id}-{i}",
        case_id=f"c-idle-{i}",
        case_number="LMM-2026-0001",
        request_id=f"r-idle-{run_id}-{i}",
        provision="beschermd wonen",
        provider="Zorgaanbieder Noord",
        estimated_cents=100_00,
        candidate_payers=["gm0363", "vws"],
        received_on=datetime.now(UTC).date(),
    )
    a.conditions = {name: {"met": True, "note": None} for name in CONDITIONS}
    return {
        **aggregate_fields(a),
        "_id": a.id,
        "_version": 1,
        "_outbox": [],
        "_applied": [],
        "_audit": [],
    }


REQUEST_SAMPLES = 20


BUDGET_YEAR = 2044
"""A year of the bridging budget none of the loaded applications is decided on."""


async def request_costs(loket: Service, bridging: Service, case_id: str) -> dict[str, float]:
    """Median ms of a few requests, one at a time: as PMM staff, a case by id, its audit
    trail, the first page of the case list; as a budget holder, a year's budget figures
    (they read the year's applications and ledger: on FerretDB the whole collections)."""
    staff = bearer("pmm", "pmm_staff", subject="pmm-bench-staff")
    holder = bearer("pmm", "budget_holder", subject="bh-bench")
    paths = {
        "loket GET /v1/cases/{id}": (loket, staff, f"/v1/cases/{case_id}"),
        "loket GET /v1/cases/{id}/audit": (loket, staff, f"/v1/cases/{case_id}/audit"),
        "loket GET /v1/cases?page_size=1 (a filtered, sorted list)": (
            loket,
            staff,
            "/v1/cases?page_size=1",
        ),
        "overbrugging GET /v1/budgets/{year} (a year's figures)": (
            bridging,
            holder,
            f"/v1/budgets/{BUDGET_YEAR}",
        ),
    }
    costs: dict[str, float] = {}
    for name, (service, headers, path) in paths.items():
        async with httpx.AsyncClient(base_url=service.base, timeout=120) as client:
            if service is bridging:
                r = await client.put(path, headers=headers, json={"total": "1000.00"})
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
            samples = []
            for _ in range(REQUEST_SAMPLES):
                t = time.perf_counter()
                r = await client.get(path, headers=headers)
                samples.append((time.perf_counter() - t) * 1000)
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
            costs[name] = statistics.median(samples)
    return costs


async def fill(coll: Any, make: Any, have: int, want: int) -> None:
    for start in range(have, want, 1000):
        await coll.insert_many([make(i) for i in range(start, min(want, start + 1000))])


async def bench(run: Run) -> list[Row]:
    window = 20.0 if run.quick else 60.0
    settle = 20.0 if run.quick else 45.0
    scale = 10 if run.quick else 1
    many = {
        "cases": 10_000 // scale,
        "applications": 10_000 // scale,
        "professionals": 50_000 // scale,
    }
    org = f"gi{run.run_id}"
    names = ["register", "loket", "let", "overbrugging", "signalen"]
    services: dict[str, Service] = {n: run.service(n, "i") for n in names}
    client: AsyncMongoClient[Doc] = AsyncMongoClient(run.store.url)
    results: dict[str, dict[str, float]] = {}
    requests: dict[str, dict[str, float]] = {}
    try:
        for svc in services.values():
            svc.start()
        for svc in services.values():
            await svc.ready()
        await http_bench.register_org(run, services["register"], org)
        await http_bench.first_intake(services["loket"], org)
        cases = client[services["loket"].database]["cases"]
        profs = client[services["register"].database]["professionals"]
        apps = client[services["overbrugging"].database]["applications"]
        case_template = await cases.find_one({"submitting_organisation": org})
        prof_template = await profs.find_one({"_id": f"mp-{org}"})
        assert case_template is not None
        assert prof_template is not None

        def case(i: int) -> Doc:
            return {
                **case_template,
                "_id": f"idle-{run.run_id}-{i}",
                "number": f"LMM-2026-9{i:06d}",
                "_outbox": [],
                "_applied": [],
                "_audit": [],
            }

        def professional(i: int) -> Doc:
            return {
                **prof_template,
                "_id": f"idle-{run.run_id}-{i}",
                "email": f"idle{i}@bench.example.nl",
                "email_key": f"idle{i}@bench.example.nl",
                "_outbox": [],
                "_applied": [],
                "_audit": [],
            }

        counts = {"cases": 1, "applications": 0, "professionals": 1}
        for phase, want in (("few", dict.fromkeys(many, 100)), ("many", many)):
            for svc in services.values():
                svc.stop()
            t = time.perf_counter()
            await fill(cases, case, counts["cases"], want["cases"])
            await fill(
                apps,
                lambda i: application(run.run_id, i),
                counts["applications"],
                want["applications"],
            )
            await fill(profs, professional, counts["professionals"], want["professionals"])
            counts = want
            print(f"  {phase}: {want} loaded in {time.perf_counter() - t:.1f} s; starting")
            for svc in services.values():
                svc.start()
            for svc in services.values():
                await svc.ready()
            await asyncio.sleep(settle)
            pids = {n: s.pid for n, s in services.items()}
            if run.store.pid:
                pids["store"] = run.store.pid
            results[phase] = await measure(pids, window)
            print(f"  {phase}: " + ", ".join(f"{k} {v:.1f}%" for k, v in results[phase].items()))
            requests[phase] = await request_costs(
                services["loket"], services["overbrugging"], str(case_template["_id"])
            )
            print(f"  {phase}: " + ", ".join(f"{k} {v:.0f} ms" for k, v in requests[phase].items()))
    finally:
        for svc in services.values():
            svc.stop()
        await client.close()
    rows = []
    label = (
        f"{many['cases']:,} cases / {many['applications']:,} applications / "
        f"{many['professionals']:,} professionals"
    )
    for name in [*(["store"] if "store" in results["few"] else []), *names]:
        few, lot = results["few"][name], results["many"][name]
        target = (
            "<= 5% of a core, same at many as at few"
            if name == "store"
            else "same at many as at few"
        )
        same = lot <= few * 1.5 + 1.0
        rows.append(
            {
                "figure": f"idle CPU of {name} over {window:.0f} s with {label}",
                "value": f"{lot:.1f}% of a core",
                "baseline": f"with 100 of each: {few:.1f}%",
                "target": target,
                "met": same and (lot <= 5 if name == "store" else True),
                "note": f"after {settle:.0f} s settling",
            }
        )
    for name, few_ms in requests["few"].items():
        lot_ms = requests["many"][name]
        scans = "list" in name or "figures" in name
        rows.append(
            {
                "figure": f"{name}, median of {REQUEST_SAMPLES}, with {label}",
                "value": f"{lot_ms:.0f} ms",
                "baseline": f"with 100 of each: {few_ms:.0f} ms",
                "target": "the same at many as at few"
                + (" (on MongoDB; FerretDB decodes the collection for a filter)" if scans else ""),
                "met": lot_ms <= few_ms * 1.5 + 5,
                "note": "one at a time, after the idle window",
            }
        )
    return rows
