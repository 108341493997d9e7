"""The consumer kit's command line with an organisation's client.properties, over TLS.

``pmm-signals-consumer --properties client.properties`` follows the organisation's signals
into a JSON-lines file and ``pmm-signals-consumer answer --properties ...`` publishes its
answer on its own response topic, both as the organisation's principal on the secured
broker's SASL_SSL listener.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pmm_contracts.cli import main as contracts_cli
from pmm_contracts.envelope import CONTENT_TYPE, encode_event, new_event, source_urn
from pmm_contracts.events.cases import Bottleneck
from pmm_contracts.events.register import OrganisationState
from pmm_contracts.events.signals import SignalAssigned
from pmm_contracts.topics import (
    REGISTER_ORGANISATIONS,
    signals_assigned_topic,
    signals_responses_topic,
)
from pmm_contracts.vocabulary import BottleneckType, LearningOrder
from pmm_runtime.testing import eventually

from .conftest import SecuredBroker

pytestmark = pytest.mark.integration

PMM = "00000001234567890000"
ORG_OIN = "00000009876543210000"
WAIT_S = 90


async def produce(conn: Any, topic: str, value: bytes, key: bytes) -> None:
    producer = AIOKafkaProducer(**conn.aiokafka_kwargs(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, value, key=key, headers=[("content-type", CONTENT_TYPE.encode())]
        )
    finally:
        await producer.stop()


def kit(*args: str) -> list[str]:
    return [sys.executable, "-m", "pmm_contracts.consumer", *args]


async def test_the_kits_command_line_reads_and_answers_with_the_organisations_file(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    org = f"tk{uuid.uuid4().hex[:8]}"
    state = OrganisationState(
        code=org,
        name=f"Testorganisatie {org}",
        kind="executing_organisation",
        joined_on=date(2026, 1, 1),
        is_member=True,
        version=1,
    )
    register = secured.principal("pmm-register")
    event = new_event(state, subject=org, source=source_urn(PMM, "register"))
    await produce(register, REGISTER_ORGANISATIONS, encode_event(event), org.encode())
    assert await asyncio.to_thread(contracts_cli, ["tenants", "--once", *secured.cli_args()]) == 0
    properties = secured.orgs_dir / org / "client.properties"

    signal_id = f"sig-{uuid.uuid4().hex[:8]}"
    assigned = SignalAssigned(
        signal_id=signal_id,
        organisation=org,
        order=LearningOrder.SECOND,
        bottleneck=Bottleneck(type=BottleneckType.ICT),
        description="two systems do not exchange a household's move",
        respond_by=date(2027, 1, 1),
    )
    value = encode_event(new_event(assigned, subject=signal_id, source=source_urn(PMM, "signalen")))
    await produce(
        secured.principal("pmm-signalen"), signals_assigned_topic(org), value, signal_id.encode()
    )

    spool = tmp_path / "signals.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMM_KAFKA")}
    follower = subprocess.Popen(  # noqa: ASYNC220  # stopped below with SIGTERM
        kit("--org", org, "--properties", str(properties), "--handler", f"file:{spool}"),
        env={**env, "PMM_OIN": ORG_OIN},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def spooled() -> list[dict[str, Any]]:
            if not spool.exists():
                return []
            return [json.loads(line) for line in spool.read_text().splitlines() if line]

        [line] = await eventually(spooled, timeout_s=WAIT_S, interval_s=0.5)
        assert line["data"]["signal_id"] == signal_id
    finally:
        follower.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(follower.communicate, timeout=60)
    assert follower.returncode == 0, output

    answered = await asyncio.to_thread(
        subprocess.run,
        kit(
            "answer",
            *("--org", org, "--properties", str(properties), "--oin", ORG_OIN),
            *("--signal", signal_id, "--status", "received"),
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert answered.returncode == 0, answered.stdout + answered.stderr
    published = json.loads(answered.stdout.strip().splitlines()[-1])

    consumer = AIOKafkaConsumer(
        signals_responses_topic(org),
        **secured.principal("pmm-signalen").aiokafka_kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    answer = json.loads(record.value)
    assert answer["id"] == published["published"]
    assert answer["source"] == source_urn(ORG_OIN, "signalen-consumer")
    assert answer["data"] == {"signal_id": signal_id, "organisation": org, "status": "received"}
