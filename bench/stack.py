"""The local stack for the benchmarks: a store, the services as subprocesses, CPU samples.

Every service runs as its own process (the venv's entry point, as ``make run`` starts it)
with a database, consumer-group prefix and HTTP port of this run only, so the benchmarks
never touch data of the tests other people run on the same broker and store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from pmm_runtime.auth import LocalIssuer
from pmm_runtime.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / ".local" / "bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KAFKA: dict[str, Any] = {}
"""Client settings of the broker beyond its address (SASL/TLS when the broker asks)."""
SERVICE_KAFKA_ENV: dict[str, str] = {}
"""``PMM_KAFKA_*`` of the bench's service processes: the local admin's connection. The
bench measures speed, not the tenant model: its consumer groups (``bench-<run>``) and
databases are its own, which no service principal's ACLs name."""


def kafka(bootstrap: str) -> dict[str, Any]:
    return {"bootstrap_servers": bootstrap, **KAFKA}


async def start_groups_at_end(bootstrap: str, groups: dict[str, str]) -> None:
    """Commit each consumer group (id: topic) at the current end of its topic, so that a
    service of this run does not first replay what earlier runs and tests left on the
    shared broker (a replay whose cost grows with the broker's history, not with this
    run). Only for topics whose history the figure does not need."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**kafka(bootstrap))
    await admin.start()
    try:
        described = await admin.describe_topics(sorted(set(groups.values())))
    finally:
        await admin.close()
    partitions = {
        str(t["topic"]): [int(p["partition"]) for p in t.get("partitions") or []]
        for t in described
        if not t.get("error_code")
    }
    for group, topic in groups.items():
        if not partitions.get(topic):
            continue  # no such topic yet: nothing to replay
        consumer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **kafka(bootstrap))
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in sorted(partitions[topic])]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            await consumer.commit({tp: await consumer.position(tp) for tp in tps})
        finally:
            await consumer.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def issuer() -> LocalIssuer:
    """The local issuer of ``make keys`` (.local/issuer), as the services verify it."""
    defaults = ServiceSettings(service_name="bench")
    key = (ROOT / ".local" / "issuer" / "private.pem").read_text()
    return LocalIssuer(key, issuer=defaults.jwt_issuer, audience=defaults.jwt_audience)


def bearer(org: str, *roles: str, subject: str | None = None) -> dict[str, str]:
    token = issuer().issue(subject=subject or f"{org}-bench", organisation=org, roles=roles)
    return {"Authorization": f"Bearer {token}"}


COMMANDS_METRIC = re.compile(
    r'^ferretdb_client_requests_total\{command="([^"]+)"[^}]*\} (\S+)$', re.M
)
PER_EVENT = ("find", "insert", "update", "delete", "findAndModify")


def commands_per_event(before: Counter[str], after: Counter[str], events: int) -> str:
    """The store commands between two ``Store.commands`` readings, per event."""
    spent = after - before
    if not spent or not events:
        return "not counted (not a private FerretDB)"
    parts = ", ".join(f"{name} {spent[name] / events:.2f}" for name in PER_EVENT)
    return f"{spent.total() / events:.2f} store commands per event ({parts})"


@dataclass
class Store:
    """The MongoDB-wire store of this run: its URL, what it is, and its process."""

    url: str
    kind: str
    pid: int | None
    process: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None
    metrics_url: str | None = None
    """A private FerretDB's Prometheus metrics (its debug listener), for ``commands``."""

    def commands(self) -> Counter[str]:
        """How many commands of each kind the store has answered so far (a private
        FerretDB's ``ferretdb_client_requests_total``); empty for another store."""
        if self.metrics_url is None:
            return Counter()
        text = httpx.get(self.metrics_url, timeout=10).text
        counts: Counter[str] = Counter()
        for name, value in COMMANDS_METRIC.findall(text):
            counts[name] += int(float(value))
        return counts

    def cpu_profile(self, seconds: int, path: Path) -> str:
        """A private FerretDB's Go CPU profile over the next ``seconds`` (its pprof on
        the debug listener), written to ``path`` and summarised by ``go tool pprof``:
        where the store's own time goes. Blocks; run it in a thread beside the load."""
        if self.metrics_url is None:
            return "no store profile (not a private FerretDB)"
        url = self.metrics_url.replace("/debug/metrics", f"/debug/pprof/profile?seconds={seconds}")
        path.write_bytes(httpx.get(url, timeout=seconds + 30).content)
        go = shutil.which("go") or "/usr/local/go/bin/go"
        binary = _ferretdb_binary()
        done = subprocess.run(  # noqa: S603
            [go, "tool", "pprof", "-top", "-nodecount=25", str(binary), str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.stdout or done.stderr

    def describe(self) -> str:
        where = self.url.split("@")[-1]
        return f"{self.kind} ({where})"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
            if self.process.poll() is None:
                self.process.kill()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _ferretdb_binary() -> Path | None:
    found = sorted((ROOT / ".local" / "ferretdb" / "bin").glob("ferretdb-v*"))
    return found[-1] if found else None


def open_store(mode: str, run_id: str) -> Store:
    """``PMM_MONGODB_URL`` when set (MongoDB); else a private FerretDB of this run
    (``private``, the default: the idle CPU of the store is then this run's alone) or the
    shared local store of ``deploy/local/store.sh`` (``shared``)."""
    external = os.environ.get("PMM_MONGODB_URL")
    if external:
        return Store(external, "external store (PMM_MONGODB_URL)", None)
    store_sh = ["bash", str(ROOT / "deploy" / "local" / "store.sh")]
    binary = _ferretdb_binary()
    if mode == "shared" or binary is None:
        url = subprocess.run(  # noqa: S603
            [*store_sh, "url"], check=True, capture_output=True, text=True
        )
        pid_file = ROOT / ".local" / "ferretdb" / "ferretdb.pid"
        kind = "shared FerretDB 1.24 / SQLite"
        if not pid_file.exists():
            pid_file = ROOT / ".local" / "mongo" / "mongod.pid"
            kind = "shared mongod"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        return Store(url.stdout.strip(), kind + " (also used by other people's tests)", pid)
    port, debug_port = free_port(), free_port()
    data = RUN_DIR / f"store-{run_id}"
    (data / "data").mkdir(parents=True, exist_ok=True)
    log = (data / "ferretdb.log").open("wb")
    process = subprocess.Popen(  # noqa: S603
        [
            str(binary),
            "--handler=sqlite",
            f"--sqlite-url=file:{data / 'data'}/",
            f"--listen-addr=127.0.0.1:{port}",
            f"--debug-addr=127.0.0.1:{debug_port}",
            f"--state-dir={data}",
            "--telemetry=disable",
            "--log-level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            break
        time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError(f"private FerretDB did not start; see {data / 'ferretdb.log'}")
    # As deploy/local/store.sh: the index FerretDB's writes by _id can use (decision 0008).
    subprocess.Popen(  # noqa: S603 - our own script, stopped with the store (--pid)
        [
            sys.executable,
            str(ROOT / "deploy" / "local" / "ferretdb_id_index.py"),
            str(data / "data"),
            "--watch",
            "--pid",
            str(process.pid),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    return Store(
        f"mongodb://127.0.0.1:{port}/?maxPoolSize=1",
        f"private FerretDB {binary.name.removeprefix('ferretdb-')} / SQLite of this run",
        process.pid,
        process,
        data,
        f"http://127.0.0.1:{debug_port}/debug/metrics",
    )


@dataclass
class Service:
    """One service process of this run."""

    name: str
    port: int
    database: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    argv: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        log = self.log_path.open("ab")
        argv = self.argv or [str(ROOT / ".venv" / "bin" / f"pmm-{self.name}")]
        self.process = subprocess.Popen(  # noqa: S603
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    async def ready(self, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.base}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready after {timeout_s} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # Under cProfile: SIGINT, which uvicorn re-raises as KeyboardInterrupt after its
        # graceful shutdown, so cProfile still writes its file (a re-raised SIGTERM kills).
        profiled = "cProfile" in self.argv
        self.process.send_signal(signal.SIGINT if profiled else signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text[-lines:])


@dataclass
class Run:
    """What every benchmark of one ``bench/run.py`` invocation shares."""

    store: Store
    bootstrap: str
    quick: bool
    profile: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    started: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M"))
    services: list[Service] = field(default_factory=list)

    def service(self, name: str, tag: str = "", **env: str) -> Service:
        """A service process (not started) with this run's database, groups and port."""
        port = free_port()
        database = f"bench_{name}_{self.run_id}{tag}"
        values = {
            **os.environ,
            "PMM_MONGODB_URL": self.store.url,
            "PMM_KAFKA_BOOTSTRAP": self.bootstrap,
            **SERVICE_KAFKA_ENV,
            "PMM_MONGODB_DATABASE": database,
            "PMM_GROUP_PREFIX": f"bench-{self.run_id}{tag}",
            "PMM_HTTP_PORT": str(port),
            "PMM_LOG_JSON": "true",
            # The default 30 s: a shorter refresh decodes the shared broker's metadata (thousands
            # of test topics) over and over (22 s of signalen's CPU in run 33079ad2).
            **env,
        }
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        log = RUN_DIR / f"{self.run_id}-{name}{tag or ''}-{port}.log"
        svc = Service(name, port, database, values, log)
        self.services.append(svc)
        return svc

    def stop_all(self) -> None:
        for svc in self.services:
            svc.stop()


Row = dict[str, Any]


def aggregate_fields(aggregate: Any) -> dict[str, Any]:
    """The document fields of an aggregate as ``pmm_runtime.changes.Aggregates.dump``
    writes them (its JSON dump without id and version), for bulk set-up."""
    from pydantic import TypeAdapter

    fields: dict[str, Any] = TypeAdapter(type(aggregate)).dump_python(aggregate, mode="json")
    fields.pop("id", None)
    fields.pop("version", None)
    return fields
