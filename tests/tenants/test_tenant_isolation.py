"""Tenant isolation on the real secured broker (DESIGN.md §5, issue 13).

Every denial is the broker's own authorization (or authentication) error, never a message
that merely did not arrive. Organisations join and leave through the register's changelog,
which the tenant provisioner follows.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
    for_code,
)

from pmm_contracts.cli import main as contracts_cli
from pmm_contracts.connection import Connection
from pmm_contracts.consumer import SignalConsumer, default_group
from pmm_contracts.envelope import encode_event, new_event, source_urn
from pmm_contracts.events.cases import Bottleneck
from pmm_contracts.events.register import OrganisationState
from pmm_contracts.events.signals import (
    ResponseStatus,
    SignalAssigned,
    SignalResponse,
)
from pmm_contracts.topics import (
    LET_ESCALATIONS,
    LOKET_CASES,
    REGISTER_ORGANISATIONS,
    REGISTER_PROFESSIONALS,
    signals_assigned_topic,
    signals_responses_topic,
)
from pmm_contracts.vocabulary import BottleneckType, LearningOrder
from pmm_runtime.testing import eventually

from .conftest import SecuredBroker, login_error

pytestmark = pytest.mark.integration

REGISTER_SOURCE = source_urn("00000001234567890000", "register")


def organisation(code: str, *, member: bool, version: int) -> bytes:
    state = OrganisationState(
        code=code,
        name=f"Testorganisatie {code}",
        kind="executing_organisation",
        joined_on=date(2026, 1, 1),
        left_on=None if member else date(2026, 12, 1),
        is_member=member,
        version=version,
    )
    return encode_event(new_event(state, subject=code, source=REGISTER_SOURCE))


async def produce(conn: Connection, topic: str, value: bytes | None, key: bytes) -> None:
    producer = AIOKafkaProducer(**conn.kwargs(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_one(conn: Connection, topic: str) -> Any:
    """The first record of ``topic`` (aiokafka, by assignment, no group)."""
    consumer = AIOKafkaConsumer(
        **conn.kwargs(), group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        return await asyncio.wait_for(consumer.getone(), timeout=20)
    finally:
        await consumer.stop()


def read_error(conn: Connection, topic: str, *, group: str) -> type:
    """The broker's error class when ``conn`` tries to read ``topic`` (as consumer ``group``).

    aiokafka only logs an unauthorized topic and waits, so this reads with librdkafka, which
    reports the broker's error code (the same codes as aiokafka's error classes)."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            **conn.librdkafka_config(),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    try:
        consumer.subscribe([topic])
        for _ in range(30):
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is None:
                raise AssertionError(f"read a record of {topic}: not denied")
            error_class: type = for_code(error.code())
            return error_class
        raise AssertionError(f"no answer from the broker for {topic}")
    finally:
        consumer.close()


async def join(secured: SecuredBroker, *codes: str, member: bool = True, version: int = 1) -> None:
    """The register publishes the organisations' state; the provisioner replays the changelog."""
    register = secured.principal("pmm-register")
    for code in codes:
        value = organisation(code, member=member, version=version)
        await produce(register, REGISTER_ORGANISATIONS, value, code.encode())
    args = ["tenants", "--once", *secured.cli_args()]
    assert await asyncio.to_thread(contracts_cli, args) == 0


def org_connection(secured: SecuredBroker, code: str) -> Connection:
    return Connection.from_properties(secured.orgs_dir / code / "client.properties")


@pytest.fixture(scope="module")
async def two_orgs(secured: SecuredBroker) -> AsyncIterator[tuple[str, str]]:
    a, b = f"ta{uuid.uuid4().hex[:8]}", f"tb{uuid.uuid4().hex[:8]}"
    await join(secured, a, b)
    # Something on every topic an organisation must not read, so a denial is not emptiness.
    admin = secured.admin()
    for topic in (signals_assigned_topic(b), LOKET_CASES, REGISTER_PROFESSIONALS):
        await produce(admin, topic, b'{"x": 1}', b"k")
    yield a, b
    await join(secured, a, b, member=False, version=2)


async def test_the_organisations_file_is_sasl_ssl_with_the_generated_ca(
    secured: SecuredBroker, two_orgs: tuple[str, str]
) -> None:
    a, _ = two_orgs
    conn = org_connection(secured, a)
    assert conn.bootstrap == secured.tls_bootstrap
    assert conn.security_protocol == "SASL_SSL"
    assert conn.sasl_mechanism == "SCRAM-SHA-512"
    assert conn.sasl_username == f"org-{a}"
    assert conn.ssl_cafile == str(secured.ca_file)
    java = (secured.orgs_dir / a / "client-java.properties").read_text()
    assert "ScramLoginModule" in java
    assert "ssl.truststore.type=PEM" in java


async def test_an_organisation_reads_its_signals_and_answers_on_its_own_topic_over_tls(
    secured: SecuredBroker, two_orgs: tuple[str, str]
) -> None:
    a, _ = two_orgs
    conn = org_connection(secured, a)
    # What signalen would publish; the consumer kit answers on the organisation's topic.
    signal_id = f"sig-{uuid.uuid4().hex[:8]}"
    answers: list[str] = []

    def handle(event: Any) -> dict[str, str]:
        answers.append(event.data.signal_id)
        return {"status": ResponseStatus.RECEIVED.value}

    signalen = secured.principal("pmm-signalen")
    event = _assigned(a, signal_id)
    await produce(signalen, signals_assigned_topic(a), encode_event(event), signal_id.encode())
    consumer = SignalConsumer(org=a, handler=handle, connection=conn)
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: consumer.answered >= 1, timeout_s=30)
    finally:
        consumer.stop()
        await task
    assert signal_id in answers
    # signalen reads the answer, as its pattern subscription does
    record = await read_one(signalen, signals_responses_topic(a))
    assert record.key == signal_id.encode()


def _assigned(org: str, signal_id: str) -> Any:
    data = SignalAssigned(
        signal_id=signal_id,
        organisation=org,
        order=LearningOrder.THIRD,
        bottleneck=Bottleneck(type=BottleneckType.ICT),
        description="the link between two systems fails for households that move",
        respond_by=date(2027, 1, 1),
    )
    return new_event(data, subject=signal_id, source=source_urn("00000001234567890000", "signalen"))


@pytest.mark.parametrize(
    "topic", ["other-signals", LOKET_CASES, REGISTER_PROFESSIONALS, REGISTER_ORGANISATIONS]
)
async def test_an_organisation_cannot_read_another_organisations_signals_or_any_service_topic(
    secured: SecuredBroker, two_orgs: tuple[str, str], topic: str
) -> None:
    a, b = two_orgs
    target = signals_assigned_topic(b) if topic == "other-signals" else topic
    conn = org_connection(secured, a)
    error = await asyncio.to_thread(read_error, conn, target, group=default_group(a))
    assert error is TopicAuthorizationFailedError


@pytest.mark.parametrize(
    "topic",
    ["other-responses", "own-signals", LOKET_CASES, LET_ESCALATIONS, REGISTER_PROFESSIONALS],
)
async def test_an_organisation_cannot_produce_on_another_organisations_or_any_service_topic(
    secured: SecuredBroker, two_orgs: tuple[str, str], topic: str
) -> None:
    a, b = two_orgs
    target = {
        "other-responses": signals_responses_topic(b),
        "own-signals": signals_assigned_topic(a),
    }
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(org_connection(secured, a), target.get(topic, topic), b"{}", b"k")


async def test_an_organisation_cannot_join_another_organisations_consumer_group(
    secured: SecuredBroker, two_orgs: tuple[str, str]
) -> None:
    a, b = two_orgs
    conn = org_connection(secured, a)
    own = signals_assigned_topic(a)
    for group in (default_group(b), "pmm.signalen.main"):
        error = await asyncio.to_thread(read_error, conn, own, group=group)
        assert error is GroupAuthorizationFailedError, group


async def test_an_anonymous_client_or_a_wrong_password_cannot_connect(
    secured: SecuredBroker,
) -> None:
    anonymous = AIOKafkaProducer(bootstrap_servers=secured.bootstrap, request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(anonymous.start(), timeout=30)
    await anonymous.stop()
    wrong = Connection(
        bootstrap=secured.bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="admin",
        sasl_password="not-the-password",
    )
    assert "invalid credentials" in await asyncio.to_thread(login_error, wrong)


async def test_a_service_cannot_write_a_topic_it_does_not_own(secured: SecuredBroker) -> None:
    let = secured.principal("pmm-let")
    await produce(let, LET_ESCALATIONS, b'{"x": 1}', b"own")  # its own topic: allowed
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(let, LOKET_CASES, b"{}", b"forged")
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(let, REGISTER_PROFESSIONALS, b"", b"someone")


async def test_an_organisation_that_leaves_loses_access(secured: SecuredBroker) -> None:
    code = f"tl{uuid.uuid4().hex[:8]}"
    await join(secured, code)
    conn = org_connection(secured, code)
    answer = SignalResponse(signal_id="sig-1", organisation=code, status=ResponseStatus.RECEIVED)
    await produce(conn, signals_responses_topic(code), answer.model_dump_json().encode(), b"s")
    assert await asyncio.to_thread(login_error, conn) == ""

    await join(secured, code, member=False, version=2)
    assert not (secured.orgs_dir / code / "client.properties").exists()
    assert "invalid credentials" in await asyncio.to_thread(login_error, conn)
    with pytest.raises(KafkaConnectionError):  # what aiokafka makes of it
        await produce(conn, signals_responses_topic(code), b"{}", b"s")
    # A full replay of the changelog changes nothing (idempotent).
    await join(secured, code, member=False, version=2)
    assert "invalid credentials" in await asyncio.to_thread(login_error, conn)


async def test_the_tls_listener_verifies_the_broker_with_the_generated_ca(
    secured: SecuredBroker,
) -> None:
    admin = secured.admin()
    tls = Connection(
        bootstrap=secured.tls_bootstrap,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=admin.sasl_username,
        sasl_password=admin.sasl_password,
        ssl_cafile=str(secured.ca_file),
    )
    await produce(tls, LOKET_CASES, b'{"x": 1}', b"tls")
    untrusted = AIOKafkaProducer(
        bootstrap_servers=secured.tls_bootstrap,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=admin.sasl_username,
        sasl_plain_password=admin.sasl_password,
        ssl_context=ssl.create_default_context(),  # the system's CAs only
        request_timeout_ms=5000,
    )
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(untrusted.start(), timeout=30)
    await untrusted.stop()
