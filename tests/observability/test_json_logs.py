"""Every line a real service process writes is one JSON object (issue 16).

Each service runs as its own process (its console script, as ``make run`` starts it) with
a fresh database, stdout and stderr into one file, no TTY and no ``PMM_LOG_JSON``: the
default must be JSON. Its start-up (uvicorn, FastStream, aiokafka, the platform), a few
requests (answered, refused with personal data in the query string, unknown, one with a
caller's W3C ``traceparent``) and its graceful stop are read back line by line.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pmm_runtime.settings import ServiceSettings
from pmm_runtime.testing import kafka_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120.0  # a cold process on a shared machine: imports, broker, store
SERVICES = ("register", "loket", "let", "overbrugging", "signalen")
PERSONAL = ("111222333", "Jansen")  # a BSN and a name in query strings: in no line
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_ready(
    url: str, process: asyncio.subprocess.Process, log: Path, probe: str = "/readyz"
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            assert process.returncode is None, f"the process exited; see {log}"
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}{probe}")).status_code == 200:
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


def settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"pmm_{service}.settings")
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
    ]
    assert len(found) == 1, found
    return found[0]


async def run_and_read(
    service: str,
    env: dict[str, str],
    port: int,
    log: Path,
    requests: Callable[[httpx.AsyncClient], Awaitable[None]],
    probe: str = "/readyz",
) -> list[dict[str, Any]]:
    """Start the service's console script, make ``requests``, SIGTERM it; its log lines,
    each checked to be a JSON object without colour codes or personal data, with uvicorn's
    own lines among them."""
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            str(ROOT / ".venv" / "bin" / f"pmm-{service}"),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
    try:
        await wait_ready(url, process, log, probe)
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
            await requests(client)
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=60)
    # uvicorn re-raises the signal after its graceful shutdown
    assert code in {0, -signal.SIGTERM}, f"{service} exited with {code}; see {log}"
    return read_log(service, log)


def read_log(service: str, log: Path) -> list[dict[str, Any]]:
    raw = log.read_bytes()
    assert b"\x1b[" not in raw, "colour codes in the log"
    text = raw.decode()
    for personal in PERSONAL:
        assert personal not in text
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{service}: line {number} is not JSON: {line!r}")
        assert isinstance(record, dict), line
        assert {"event", "level", "timestamp", "logger"} <= record.keys(), line
        records.append(record)
    loggers = {r["logger"] for r in records}
    events = [str(r["event"]) for r in records]
    assert any(lg.startswith("uvicorn") for lg in loggers), loggers  # uvicorn's own lines
    assert any("Uvicorn running on" in e for e in events), events
    return records


@pytest.mark.parametrize("service", SERVICES)
async def test_every_line_of_a_service_process_is_json(
    service: str, make_settings: Callable[..., Any], tmp_path: Path
) -> None:
    settings = make_settings(settings_class(service))
    port = free_port()
    seen: dict[str, int] = {}

    async def requests(client: httpx.AsyncClient) -> None:
        assert (await client.get("/healthz")).status_code == 200
        schema = (await client.get("/openapi.json")).json()
        # a route of the API with a path parameter, asked without a token
        template = next(
            path for path, ops in schema["paths"].items() if "{" in path and "get" in ops
        )
        seen["template"] = template
        concrete = template.split("{", 1)[0] + "x" + template.split("}", 1)[1]
        refused = await client.get(f"{concrete}?bsn=111222333")
        seen["refused"] = refused.status_code
        traced = await client.get("/v1/problems", headers={"traceparent": TRACEPARENT})
        assert traced.status_code == 200
        unknown = await client.get("/no/such/path?name=Jansen")
        assert unknown.status_code == 404
        assert (await client.get("/metrics")).status_code == 200

    records = await run_and_read(
        service, process_env(settings, port), port, tmp_path / f"{service}.log", requests
    )
    events = [str(r["event"]) for r in records]
    if service != "register":  # the register reads its changelog without FastStream
        assert "pmm.faststream" in {r["logger"] for r in records}  # FastStream's own lines
    assert "service started" in events, events
    assert "service stopped" in events, events

    access = [r for r in records if r["event"] == "http request"]
    by_route = {(r["method"], r["route"], r["status"]) for r in access}
    assert ("GET", seen["template"], seen["refused"]) in by_route, by_route
    assert ("GET", "unmatched", 404) in by_route, by_route
    assert ("GET", "/openapi.json", 200) in by_route, by_route
    assert all(isinstance(r["duration_ms"], float) for r in access)
    # Probes and scrapes at DEBUG: not in an INFO log.
    assert not [r for r in access if r["route"] in {"/healthz", "/readyz", "/metrics"}]
    # The caller's trace id is on the line of its request (traces are not exported here).
    traced = [r for r in access if r["route"] == "/v1/problems"]
    assert [r.get("trace_id") for r in traced] == [TRACE_ID]


async def test_every_line_of_the_console_process_is_json(
    make_settings: Callable[..., Any], tmp_path: Path
) -> None:
    settings = make_settings(ServiceSettings, service_name="console")
    port = free_port()
    env = process_env(settings, port)

    async def requests(client: httpx.AsyncClient) -> None:
        assert (await client.get("/healthz")).status_code == 200
        await client.get("/?name=Jansen")
        assert (await client.get("/no/such/path?bsn=111222333")).status_code == 404

    records = await run_and_read(
        "console", env, port, tmp_path / "console.log", requests, "/healthz"
    )
    access = {
        (r["method"], r["route"], r["status"]) for r in records if r["event"] == "http request"
    }
    assert ("GET", "unmatched", 404) in access, access
    assert any(route == "/" for _, route, _ in access), access
