"""Run a service as a real process (its own entry point, as `make run` does) to kill it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient

from pmm_contracts.events.cases import Bottleneck, CaseEvaluated, CaseOutcome, LearningPoint
from pmm_contracts.vocabulary import BottleneckType, LearningOrder
from pmm_runtime.testing import admin_connection, kafka_env

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """One service process; ``start`` again after a kill is a restart on the same data."""

    name: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, ready_timeout_s: float = 60.0) -> None:
        env = {**os.environ, **self.env, "PMM_HTTP_PORT": str(self.port)}
        logs = ROOT / ".local" / "faults"
        logs.mkdir(parents=True, exist_ok=True)
        self.log = self.log or logs / f"{self.name}-{self.port}.log"
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / f"pmm-{self.name}")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        deadline = time.monotonic() + ready_timeout_s
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.log}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.3)
        raise TimeoutError(f"{self.name} not ready after {ready_timeout_s} s; see {self.log}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, grace_s: float) -> tuple[int, float]:
        """SIGTERM; the exit code and how long the process took to exit."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=grace_s + 10)
        return code, time.monotonic() - started

    def interrupt(self, how: str, *, grace_s: float = 10.0) -> tuple[int, float] | None:
        """Stop mid-flight: ``kill`` (SIGKILL, a crash) or ``sigterm`` (a rolling restart;
        returns the exit code and how long the process took)."""
        if how == "kill":
            self.kill()
            return None
        assert how == "sigterm", how
        return self.terminate(grace_s)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def service_env(settings: Any, name: str, **extra: str) -> dict[str, str]:
    """The settings of a test (fresh database, group prefix) as the process's environment."""
    env = {
        **kafka_env(settings),  # the broker connection, with credentials when it is secured
        "PMM_MONGODB_URL": settings.mongodb_url,
        "PMM_MONGODB_DATABASE": f"{settings.mongodb_database}_{name}",
        "PMM_GROUP_PREFIX": settings.group_prefix,
        "PMM_JWT_PUBLIC_KEY": settings.jwt_public_key or "",
        "PMM_OUTBOX_POLL_INTERVAL_S": "0.5",
        "PMM_LOG_JSON": "true",
        "PMM_SHUTDOWN_GRACE_S": "10",
    }
    env.update(extra)
    return env


async def records_of(bootstrap: str, topic: str) -> list[Any]:
    """Every record on ``topic`` now (a plain consumer without a group)."""
    consumer = AIOKafkaConsumer(**admin_connection(bootstrap).kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        found: list[Any] = []
        while True:
            behind = [tp for tp in partitions if await consumer.position(tp) < end[tp]]
            if not behind:
                return found
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                found.extend(records)
    finally:
        await consumer.stop()


def event_ids_by_subject(
    records: list[Any], subjects: set[str], event_type: str
) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if record.value is None:
            continue
        try:
            payload = json.loads(record.value)
        except ValueError:
            continue
        if payload.get("type") == event_type and payload.get("subject") in subjects:
            seen[payload["subject"]].add(payload["id"])
    return seen


async def outbox_drained(mongodb_url: str, database: str, collection: str) -> bool:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
    try:
        db = client[database]
        waiting = await db[collection].count_documents({"_outbox.0": {"$exists": True}})
        announced = await db["_outbox_pending"].count_documents({})
        return waiting == 0 and announced == 0
    finally:
        await client.close()


def local_script(script: str, command: str, env: dict[str, str], timeout_s: float = 240) -> str:
    """Run ``deploy/local/<script>.sh <command>`` with ``env`` (another port and state dir:
    the fault tests' own broker or store, never the shared one); its output."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PMM_MONGODB_URL",)}
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "local" / f"{script}.sh"), command],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0 and command != "status":
        raise RuntimeError(f"{script}.sh {command} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout + done.stderr


@dataclass
class Readiness:
    """``/readyz`` of a process sampled in the background: the answers and when they came."""

    url: str
    answers: list[tuple[float, int]] = field(default_factory=list)

    async def watch(self, interval_s: float = 0.3) -> None:
        async with httpx.AsyncClient(timeout=8.0) as client:
            while True:
                try:
                    code = (await client.get(f"{self.url}/readyz")).status_code
                except httpx.HTTPError:
                    code = 0  # no answer at all
                self.answers.append((time.monotonic(), code))
                await asyncio.sleep(interval_s)

    async def until(self, wanted: Callable[[int], bool], since: float, timeout_s: float) -> float:
        """Seconds from ``since`` to the first answer after it that is ``wanted``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for at, code in self.answers:
                if at >= since and wanted(code):
                    return at - since
            await asyncio.sleep(0.2)
        last = self.answers[-1] if self.answers else None
        raise AssertionError(f"/readyz not as wanted within {timeout_s} s (last: {last})")


def assert_graceful(exits: list[tuple[int, float]], grace_s: float = 10.0) -> None:
    """Every SIGTERM ended in a clean exit within the grace period (uvicorn re-raises
    SIGTERM after a clean shutdown: -15 is clean too)."""
    for code, took in exits:
        assert code in (0, -15), code
        assert took <= grace_s + 2, f"exit took {took:.1f} s, beyond the grace period"


def submission(org: str) -> dict[str, Any]:
    """A Loket intake by ``org``; the household reference is unique and letters only (a
    reference with 8 or 9 digits in a row is refused: it may be a BSN)."""
    reference = "hh-" + uuid.uuid4().hex[:12].translate(str.maketrans("0123456789", "ghjkmnpqrs"))
    return {
        "submitter_kind": "municipality",
        "household": {"reference": reference, "adults": 1, "children": 2},
        "life_domains": ["debts", "income"],
        "bottlenecks": [{"type": "cooperation"}],
        "organisations_involved": [org],
        "tried_locally": "the wijkteam and the regional table tried for months",
        "question": "who restores the income?",
        "urgency": "threatened",
        "legal_basis": "consent",
    }


def evaluation(org: str, n: int, *, prefix: str = "fault-case") -> CaseEvaluated:
    """A closed case's evaluation with two learning points, both assigned to ``org``."""
    now = datetime.now(UTC)
    case_id = f"{prefix}-{uuid.uuid4().hex[:12]}"
    return CaseEvaluated(
        case_id=case_id,
        case_number=f"LMM-2026-{n:04d}",
        submitter_kind="municipality",
        submitting_organisation=org,
        life_domains=("debts",),
        bottlenecks=(Bottleneck(type=BottleneckType.COOPERATION),),
        outcome=CaseOutcome.SOLVED,
        submitted_at=now,
        closed_at=now,
        duration_days=30,
        learning_points=tuple(
            LearningPoint(
                id=f"{case_id}-lp{k}",
                order=LearningOrder.SECOND,
                bottleneck=Bottleneck(type=BottleneckType.COMMUNICATION),
                organisations=(org,),
                description=f"share the decision earlier ({k})",
            )
            for k in (1, 2)
        ),
    )
