"""Rotation of an organisation's password on the secured broker (ADR 0007).

``pmm-contracts org-credentials --org X --rotate`` sets a new SCRAM password and rewrites
the organisation's files: the new one logs in and keeps the same access, the old one is
refused by the broker's authentication.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import pytest

from pmm_contracts.cli import main as contracts_cli
from pmm_contracts.connection import Connection
from pmm_contracts.envelope import encode_event, new_event, source_urn
from pmm_contracts.events.register import OrganisationState
from pmm_contracts.topics import REGISTER_ORGANISATIONS, signals_responses_topic

from .conftest import SecuredBroker, login_error

pytestmark = pytest.mark.integration

REGISTER = source_urn("00000001234567890000", "register")


async def set_membership(secured: SecuredBroker, org: str, *, member: bool, version: int) -> None:
    from aiokafka import AIOKafkaProducer

    state = OrganisationState(
        code=org,
        name=f"Testorganisatie {org}",
        kind="executing_organisation",
        joined_on=date(2026, 1, 1),
        left_on=None if member else date(2026, 12, 1),
        is_member=member,
        version=version,
    )
    producer = AIOKafkaProducer(**secured.principal("pmm-register").aiokafka_kwargs(), acks="all")
    await producer.start()
    try:
        value = encode_event(new_event(state, subject=org, source=REGISTER))
        await producer.send_and_wait(REGISTER_ORGANISATIONS, value, key=org.encode())
    finally:
        await producer.stop()
    assert await asyncio.to_thread(contracts_cli, ["tenants", "--once", *secured.cli_args()]) == 0


async def test_a_rotated_password_replaces_the_old_one_at_once(secured: SecuredBroker) -> None:
    org = f"tp{uuid.uuid4().hex[:8]}"
    await set_membership(secured, org, member=True, version=1)
    path = secured.orgs_dir / org / "client.properties"
    before = Connection.from_properties(path)
    assert await asyncio.to_thread(login_error, before) == ""

    args = ["org-credentials", "--org", org, "--rotate", *secured.cli_args()]
    assert await asyncio.to_thread(contracts_cli, args) == 0
    after = Connection.from_properties(path)
    assert after.sasl_username == before.sasl_username == f"org-{org}"
    assert after.sasl_password != before.sasl_password
    assert await asyncio.to_thread(login_error, after) == ""
    assert "invalid credentials" in await asyncio.to_thread(login_error, before)
    # The same access with the new password: it may still write its own response topic.
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**after.aiokafka_kwargs(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(signals_responses_topic(org), b"{}", key=b"rotation")
    finally:
        await producer.stop()
    await set_membership(secured, org, member=False, version=2)
