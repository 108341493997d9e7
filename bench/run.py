"""`make bench`: the platform's performance figures on the local stack (not a test).

    uv run --no-sync python bench/run.py [--quick] [--only store,signalen,http,idle,scale,existing]
        [--store private|shared]

Each figure is printed with a baseline measured in the same run, the store it ran on and
the date, and the issue's target. The services run as subprocesses with databases, groups
and ports of this run (logs in .local/bench/). ``--quick`` (about 2-5 minutes) uses smaller
bursts and shorter windows. The store: ``PMM_MONGODB_URL`` when set (MongoDB); else a
private FerretDB of this run (default; its idle CPU is then this run's alone) or the shared
local store (``--store shared``, which other people's tests also use).
The figures also go to .local/bench/<run>.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import http_bench
import idle_bench
import signalen_bench
import stack
import store_bench
from stack import ROOT, RUN_DIR, Row, Run, open_store

BENCHES: dict[str, Callable[[Run], Awaitable[list[Row]]]] = {
    "signalen": signalen_bench.bench,
    "http": http_bench.bench,
    "approvals": http_bench.approvals_only,
    "idle": idle_bench.bench,
    "scale": signalen_bench.scale,
    "store": store_bench.bench,
}


def existing(run: Run) -> list[Row]:
    """The services' own benchmarks (register search, yearly report), as they print."""
    env = {**os.environ, "PMM_MONGODB_URL": run.store.url, "PMM_KAFKA_BOOTSTRAP": run.bootstrap}
    jobs = [
        (
            "register search (services/register/bench/search_bench.py)",
            ["services/register/bench/search_bench.py", "--professionals"]
            + (["5000", "--queries", "100"] if run.quick else ["50000"]),
            "p95 <= 20 ms (the bench's own)",
        ),
        (
            "yearly report (services/signalen/bench/report_bench.py)",
            ["services/signalen/bench/report_bench.py", "--cases"]
            + (["5000"] if run.quick else ["100000"]),
            "<= 5 s for 100,000 cases (the bench's own)",
        ),
    ]
    rows = []
    for figure, argv, target in jobs:
        started = time.perf_counter()
        done = subprocess.run(  # noqa: S603
            [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
        )
        took = time.perf_counter() - started
        out = (done.stdout + done.stderr).strip().splitlines()
        print(f"  {figure}: exit {done.returncode} after {took:.0f} s")
        for line in out[-12:]:
            print(f"    {line}")
        rows.append(
            {
                "figure": figure,
                "value": "; ".join(out[-4:]) if done.returncode == 0 else "FAILED",
                "baseline": "printed by the bench itself (store get by id / load time)",
                "target": target,
                "met": done.returncode == 0 and "NOT met" not in done.stdout,
                "note": (
                    f"exit {done.returncode}: {out[-1] if out else ''}" if done.returncode else ""
                ),
            }
        )
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| figure | value | baseline (same run) | target | met? |", "|---|---|---|---|---|"]
    for r in rows:
        note = f" ({r['note']})" if r.get("note") else ""
        met = "yes" if r["met"] else "**no**"
        lines.append(
            f"| {r['figure']} | {r['value']}{note} | {r['baseline']} | {r['target']} | {met} |"
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace, infra: Any) -> int:
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - {*BENCHES, "existing"}
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    connection = getattr(infra, "connection", None)
    if connection is not None:
        stack.KAFKA.update(connection.kwargs())
        from pmm_runtime.settings import ServiceSettings
        from pmm_runtime.testing import kafka_env

        admin = ServiceSettings(
            service_name="bench",
            kafka_bootstrap=infra.kafka_bootstrap,
            **infra.settings_overrides(),
        )
        stack.SERVICE_KAFKA_ENV.update(kafka_env(admin))
    run = Run(store=None, bootstrap=infra.kafka_bootstrap, quick=args.quick, profile=args.profile)  # type: ignore[arg-type]
    run.store = open_store(args.store, run.run_id)
    load = os.getloadavg()
    print(
        f"PMM bench {run.run_id} on {run.started} UTC, {'quick' if run.quick else 'full'} mode\n"
        f"  store: {run.store.describe()}\n  broker: {run.bootstrap} (shared)\n"
        f"  machine: {os.cpu_count()} cores, load average {load[0]:.1f} at the start "
        "(shared with other people's tests)"
    )
    rows: list[Row] = []
    failures: list[str] = []
    try:
        for name in chosen:
            print(f"\n== {name}")
            try:
                if name == "existing":
                    rows += existing(run)
                else:
                    rows += await BENCHES[name](run)
            except Exception as exc:  # report and go on with the next benchmark
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
                print(f"  FAILED: {type(exc).__name__}: {exc}")
    finally:
        run.stop_all()
        run.store.stop()
    store = run.store.describe()
    print(
        f"\n## Figures of {run.started} UTC ({store}; load average at the end "
        f"{os.getloadavg()[0]:.1f})\n"
    )
    print(table(rows))
    for failure in failures:
        print(f"\nFAILED {failure}")
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    out = RUN_DIR / f"{run.run_id}.json"
    out.write_text(
        json.dumps(
            {
                "run": run.run_id,
                "date": run.started,
                "store": store,
                "quick": run.quick,
                "rows": rows,
                "failures": failures,
            },
            indent=2,
        )
    )
    print(f"\n(written to {out.relative_to(ROOT)}; service logs .local/bench/{run.run_id}-*.log)")
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small bursts, short windows (~2-5 min)"
    )
    parser.add_argument("--only", default="store,signalen,http,idle,scale,existing")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the signalen burst's service under cProfile and take the store's Go CPU profile",
    )
    parser.add_argument("--store", choices=["private", "shared"], default="private")
    parsed = parser.parse_args()
    from pmm_runtime.testing import local_infra

    # the shared broker (started if needed), the topic catalogue provisioned
    sys.exit(asyncio.run(main(parsed, local_infra())))
