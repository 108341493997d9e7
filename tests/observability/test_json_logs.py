"""Every line a real service process writes is one JSON object (issue 16).

The Loket runs as its own process (its console script, as ``make run`` starts it) with a
fresh database, stdout and stderr into one file, no TTY and no ``PMM_LOG_JSON``: the
default must be JSON. Its start-up (uvicorn, FastStream, aiokafka, the platform), a few
requests (answered, refused, unknown, with a query string) and its graceful stop are read
back line by line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pmm_loket.settings import LoketSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.testing import bearer, kafka_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120.0  # a cold process on a shared machine: imports, broker, store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_ready(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            assert process.returncode is None, f"the process exited; see {log}"
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.3)
    raise AssertionError(f"not ready after {READY_TIMEOUT_S} s; see {log}")


def process_env(settings: Any, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_")}
    env.update(kafka_env(settings))
    env.update(
        {
            "PMM_MONGODB_URL": settings.mongodb_url,
            "PMM_MONGODB_DATABASE": settings.mongodb_database,
            "PMM_GROUP_PREFIX": settings.group_prefix,
            "PMM_JWT_PUBLIC_KEY": settings.jwt_public_key or "",
            "PMM_HTTP_PORT": str(port),
            "PMM_LOG_LEVEL": "INFO",
            "PMM_SHUTDOWN_GRACE_S": "10",
            "FORCE_COLOR": "1",  # FastStream and uvicorn would colour if they decided
        }
    )
    return env


async def test_every_line_of_a_service_process_is_json(
    make_settings: Callable[..., Any], issuer: LocalIssuer, tmp_path: Path
) -> None:
    settings = make_settings(LoketSettings)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "loket.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(ROOT / ".venv" / "bin" / "pmm-loket"),
            env=process_env(settings, port),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
    try:
        await wait_ready(url, process, log)
        professional = bearer(issuer, "gm-json", "maatwerk_professional")
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
            assert (await client.get("/healthz")).status_code == 200
            answered = await client.get("/v1/cases", headers=professional)
            assert answered.status_code in {200, 403}, answered.text
            refused = await client.get("/v1/cases/LMM-1?bsn=111222333")
            assert refused.status_code == 401
            assert (await client.get("/no/such/path?name=Jansen")).status_code == 404
            assert (await client.get("/metrics")).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=60)
    # uvicorn re-raises the signal after its graceful shutdown
    assert code in {0, -signal.SIGTERM}, log.read_text(errors="replace")

    raw = log.read_bytes()
    assert b"\x1b[" not in raw, "colour codes in the log"
    lines = [line for line in raw.decode().splitlines() if line.strip()]
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"line {number} is not JSON: {line!r}")
        assert isinstance(record, dict), line
        assert {"event", "level", "timestamp", "logger"} <= record.keys(), line
        records.append(record)

    loggers = {r["logger"] for r in records}
    events = [str(r["event"]) for r in records]
    assert any(lg.startswith("uvicorn") for lg in loggers), loggers  # uvicorn's own lines
    assert "pmm.faststream" in loggers, loggers  # FastStream's subscriber lines
    assert any("Uvicorn running on" in e for e in events), events
    assert "service started" in events, events
    assert "service stopped" in events, events

    access = [r for r in records if r["event"] == "http request"]
    by_route = {(r["method"], r["route"], r["status"]) for r in access}
    assert ("GET", "/v1/cases", answered.status_code) in by_route, by_route
    assert ("GET", "/v1/cases/{case_id}", 401) in by_route, by_route
    assert ("GET", "unmatched", 404) in by_route, by_route
    assert all(isinstance(r["duration_ms"], float) for r in access)
    # Probes and scrapes at DEBUG: not in an INFO log.
    assert not [r for r in access if r["route"] in {"/healthz", "/readyz", "/metrics"}]
    # The path and query string (which may carry personal data) are in no line.
    text = raw.decode()
    for personal in ("111222333", "Jansen", "LMM-1"):
        assert personal not in text
