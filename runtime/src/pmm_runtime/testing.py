"""pytest plugin: the real Kafka broker and store for integration tests.

Loaded by the root ``conftest.py``. The broker and store are ``PMM_KAFKA_BOOTSTRAP`` /
``PMM_MONGODB_URL`` when set; otherwise the project's own ``deploy/local/infra.sh``
starts them (idempotent). ``local_infra()`` does the same for benchmarks. Each test gets
unique topic and database names, so tests never see each other's data.

When the local broker is secured (SASL/SCRAM), tests connect as its admin principal
(``Infra.connection``; the helpers below find it for a bare bootstrap string), because
they create topics and consumer groups of their own; the principals of the services are
tested on their own (tests/tenants).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import ConsumerRecord

from pmm_contracts.connection import CREDENTIALS_DIR_ENV, Connection, local_connection
from pmm_contracts.envelope import CloudEvent, encode_event
from pmm_runtime.auth import LocalIssuer, generate_key_pair
from pmm_runtime.settings import ServiceSettings

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap: str
    mongodb_url: str
    connection: Connection = field(default_factory=Connection)

    def kafka_kwargs(self) -> dict[str, Any]:
        """``bootstrap_servers`` and the admin's security arguments for an aiokafka client."""
        return self.connection.aiokafka_kwargs()

    def settings_overrides(self) -> dict[str, Any]:
        """The ``ServiceSettings`` fields that make a service connect as ``connection``."""
        conn = self.connection
        if not conn.uses_sasl:
            return {}
        return {
            "kafka_security_protocol": conn.security_protocol,
            "kafka_sasl_mechanism": conn.sasl_mechanism or "SCRAM-SHA-512",
            "kafka_username": conn.sasl_username,
            "kafka_password": conn.sasl_password,
            "kafka_ca_file": conn.ssl_cafile,
        }


def kafka_env(settings: ServiceSettings) -> dict[str, str]:
    """``PMM_KAFKA_*`` variables that give a service subprocess the broker connection of
    ``settings`` (e.g. the admin's, from ``make_settings``)."""
    from pmm_runtime.kafka_security import connection

    conn = connection(settings)
    env = {"PMM_KAFKA_BOOTSTRAP": conn.bootstrap}
    if conn.uses_sasl:
        env |= {
            "PMM_KAFKA_SECURITY_PROTOCOL": conn.security_protocol,
            "PMM_KAFKA_SASL_MECHANISM": conn.sasl_mechanism or "SCRAM-SHA-512",
            "PMM_KAFKA_USERNAME": conn.sasl_username or "",
            "PMM_KAFKA_PASSWORD": conn.sasl_password or "",
        }
        if conn.ssl_cafile:
            env["PMM_KAFKA_CA_FILE"] = conn.ssl_cafile
    return env


def credentials_dir() -> Path:
    """The local broker's credentials (``PMM_KAFKA_CREDENTIALS_DIR``, else .local/kafka/...)."""
    configured = os.environ.get(CREDENTIALS_DIR_ENV)
    return Path(configured) if configured else REPO_ROOT / ".local" / "kafka" / "credentials"


def admin_connection(bootstrap: str) -> Connection:
    """The local broker's admin when ``bootstrap`` is that broker and it is secured."""
    return local_connection(bootstrap, directory=credentials_dir())


def _reachable(host_port: str) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def _mongo_host_port(url: str) -> str:
    rest = url.split("://", 1)[-1].split("/", 1)[0].split("@")[-1].split(",")[0]
    return rest if ":" in rest else rest + ":27017"


class InfraUnavailable(RuntimeError):
    """No broker or store to run against."""


def local_infra() -> Infra:
    """The broker and store for tests and benchmarks, with the topic catalogue provisioned.

    ``PMM_KAFKA_BOOTSTRAP`` / ``PMM_MONGODB_URL`` when set; otherwise the project's own
    ``deploy/local/infra.sh`` starts them (idempotent) and ``store.sh url`` names the store.
    """
    bootstrap = os.environ.get("PMM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    mongodb_url = os.environ.get("PMM_MONGODB_URL")
    script = REPO_ROOT / "deploy" / "local"
    if mongodb_url is None or not _reachable(bootstrap):
        if not (script / "infra.sh").exists():
            raise InfraUnavailable("no Kafka/store: set PMM_KAFKA_BOOTSTRAP and PMM_MONGODB_URL")
        subprocess.run(["bash", str(script / "infra.sh"), "up"], check=True)  # noqa: S603, S607
        if mongodb_url is None:
            mongodb_url = subprocess.run(  # noqa: S603
                ["bash", str(script / "store.sh"), "url"],  # noqa: S607
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
    if not _reachable(_mongo_host_port(mongodb_url)):
        raise InfraUnavailable(f"store not reachable at {mongodb_url}")
    from pmm_contracts.cli import all_specs, provision

    connection = admin_connection(bootstrap)
    specs = all_specs([])
    asyncio.run(provision(bootstrap, specs, connection=connection))  # with compaction
    if connection.uses_sasl:
        from pmm_contracts.tenants import provision_services

        provision_services(connection, specs, credentials_dir())
    return Infra(bootstrap, mongodb_url, connection)


@pytest.fixture(scope="session")
def infra() -> Infra:
    try:
        return local_infra()
    except InfraUnavailable as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def key_pair() -> tuple[str, str]:
    return generate_key_pair()


@pytest.fixture(scope="session")
def issuer(key_pair: tuple[str, str]) -> LocalIssuer:
    defaults = ServiceSettings(service_name="test")
    return LocalIssuer(key_pair[0], issuer=defaults.jwt_issuer, audience=defaults.jwt_audience)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for this test's topics, groups and databases."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def make_settings(infra: Infra, key_pair: tuple[str, str], unique: str) -> Callable[..., Any]:
    """Build a service's settings class pointed at the real infra, with a fresh database."""

    def build(cls: type[ServiceSettings] = ServiceSettings, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "kafka_bootstrap": infra.kafka_bootstrap,
            **infra.settings_overrides(),
            "mongodb_url": infra.mongodb_url,
            "jwt_public_key": key_pair[1],
            "group_prefix": f"test-{unique}",
            "outbox_poll_interval_s": 0.5,
            "consumer_retry_backoff_s": 0.05,
            "kafka_metadata_max_age_ms": 2_000,
            "log_json": True,
        }
        values.update(overrides)
        if "mongodb_database" not in values:
            name = values.get("service_name") or cls.model_fields["service_name"].default
            values["mongodb_database"] = f"t_{name}_{unique}"
        return cls(**values)

    return build


async def create_topics(bootstrap: str, names: list[str], partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(**admin_connection(bootstrap).kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, partitions, 1) for n in names if n not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


async def publish_events(bootstrap: str, topic: str, *events: CloudEvent[Any]) -> None:
    """Produce CloudEvents as another service would (plain client, ``acks=all``, keyed)."""
    producer = AIOKafkaProducer(**admin_connection(bootstrap).kwargs(), acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(topic, encode_event(event), key=event.key)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    count: int,
    timeout_s: float = 20.0,
    settle_s: float = 0.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``count`` records from the start of ``topic`` with a plain aiokafka consumer.

    With ``settle_s`` it keeps reading that long after ``count`` arrived, so a test can
    show that no extra (duplicate) record follows.
    """
    consumer = AIOKafkaConsumer(
        topic,
        **admin_connection(bootstrap).kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        settle_until: float | None = None
        while loop.time() < deadline:
            if len(records) >= count:
                if settle_until is None:
                    settle_until = loop.time() + settle_s
                if loop.time() >= settle_until:
                    break
            batch = await consumer.getmany(timeout_ms=200)
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def eventually(
    check: Callable[[], Any], *, timeout_s: float = 20.0, interval_s: float = 0.1
) -> Any:
    """Await ``check()`` (sync or async) until it returns a truthy value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: Any = None
    while loop.time() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s (last: {last!r})")


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    """Run a service's FastAPI app (its platform started) and give an HTTP client for it."""
    from contextlib import AsyncExitStack

    import httpx

    async with AsyncExitStack() as stack:

        async def start(app: Any) -> httpx.AsyncClient:
            await stack.enter_async_context(app.state.platform.running())
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test"
            )
            return await stack.enter_async_context(client)

        yield start


def bearer(
    issuer: LocalIssuer, organisation: str, *roles: str, subject: str | None = None
) -> dict[str, str]:
    """Authorization header of a token for ``organisation`` with ``roles``."""
    token = issuer.issue(
        subject=subject or f"{organisation}-tester", organisation=organisation, roles=list(roles)
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def running_platform() -> AsyncIterator[Callable[..., Any]]:
    """Start ``Platform`` objects for a test and stop them (gracefully) afterwards."""
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as stack:

        async def start(platform: Any) -> Any:
            await stack.enter_async_context(platform.running())
            return platform

        yield start
