"""The Java sample (contracts/java-sample) answers a signal in binary mode; signalen records it.

On the secured broker: the organisation joins the register and gets its principal from the
tenant provisioner; signalen runs as its own principal (``pmm-signalen``) and assigns a
signal from an evaluated case; the Java sample, built with Maven and run with the
organisation's ``client.properties`` over TLS, answers on the organisation's response topic
with the CloudEvents Java SDK in binary mode; signalen shows the answer.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pmm_contracts.cli import main as contracts_cli
from pmm_contracts.connection import Connection
from pmm_contracts.envelope import encode_event, new_event, source_urn
from pmm_contracts.events.cases import (
    Bottleneck,
    CaseClosed,
    CaseEvaluated,
    CaseOutcome,
    CaseSubmitted,
    LearningPoint,
    Urgency,
)
from pmm_contracts.events.register import OrganisationState
from pmm_contracts.topics import (
    LOKET_CASES,
    REGISTER_ORGANISATIONS,
    signals_responses_topic,
)
from pmm_contracts.vocabulary import (
    BottleneckType,
    LearningOrder,
    LifeDomain,
    OrganisationKind,
    Role,
    SubmitterKind,
)
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.testing import REPO_ROOT, bearer, eventually
from pmm_signalen.app import create_app
from pmm_signalen.domain.model import signal_id_for
from pmm_signalen.settings import SignalenSettings

from .conftest import SecuredBroker

pytestmark = pytest.mark.integration

SAMPLE = REPO_ROOT / "contracts" / "java-sample"
BUILD_TIMEOUT_S = 900  # the first build downloads the plugins and jars from Maven Central
WAIT_S = 120  # a fresh consumer group on a loaded shared machine
ORG_OIN = "00000009876543210000"
REGISTER = source_urn("00000001234567890000", "register")
LOKET = source_urn("00000001234567890000", "loket")


def build_sample() -> list[str]:
    """Compile the sample (offline when Maven's cache has everything) and give its classpath."""
    mvn = shutil.which("mvn")
    java = shutil.which("java")
    if mvn is None or java is None:
        pytest.fail("the Java sample needs Java 17 and Maven (mvn) on PATH")
    goals = ["compile", "dependency:build-classpath", "-Dmdep.outputFile=target/classpath.txt"]
    base = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(SAMPLE / "pom.xml"), *goals]
    built = subprocess.run(
        [*base[:2], "-o", *base[2:]],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    if built.returncode != 0:  # something is not cached yet: fetch it
        built = subprocess.run(
            base, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
        )
    if built.returncode != 0:
        pytest.fail(f"mvn could not build the Java sample:\n{built.stdout}\n{built.stderr}")
    classpath = (SAMPLE / "target" / "classpath.txt").read_text(encoding="utf-8").strip()
    return [java, "-cp", f"{SAMPLE / 'target' / 'classes'}:{classpath}"]


async def produce(conn: Connection, topic: str, *events: Any) -> None:
    producer = AIOKafkaProducer(**conn.aiokafka_kwargs(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(topic, encode_event(event), key=event.key)
    finally:
        await producer.stop()


async def join(secured: SecuredBroker, org: str) -> None:
    """The register says the organisation joined; the provisioner gives it its principal."""
    state = OrganisationState(
        code=org,
        name=f"Testorganisatie {org}",
        kind=OrganisationKind.EXECUTING_ORGANISATION,
        is_member=True,
        version=1,
    )
    event = new_event(state, subject=org, source=REGISTER)
    await produce(secured.principal("pmm-register"), REGISTER_ORGANISATIONS, event)
    args = ["tenants", "--once", *secured.cli_args()]
    assert await asyncio.to_thread(contracts_cli, args) == 0


def evaluated_case(org: str, unique: str) -> tuple[list[Any], str]:
    """A case's submission, closing and evaluation with one learning point for ``org``."""
    case_id, number = f"case-{unique}", "LMM-2026-0001"
    closed = datetime.now(UTC)
    submitted = closed - timedelta(days=40)
    bottleneck = Bottleneck(type=BottleneckType.LAWS_AND_REGULATIONS)
    point = LearningPoint(
        id="lp1",
        order=LearningOrder.THIRD,
        bottleneck=bottleneck,
        organisations=(org,),
        regulation_reference="Participatiewet art. 18",
        description="the rules did not foresee this household's move",
    )
    common: dict[str, Any] = {"case_id": case_id, "case_number": number}
    events = [
        CaseSubmitted(
            **common,
            submitting_organisation="gm0363",
            submitter_kind=SubmitterKind.MUNICIPALITY,
            life_domains=(LifeDomain.INCOME,),
            bottlenecks=(bottleneck,),
            organisations_involved=("gm0363",),
            urgency=Urgency.THREATENED,
            adults=1,
            children=0,
            submitted_at=submitted,
            intake_due=submitted.date() + timedelta(days=5),
        ),
        CaseClosed(
            **common,
            outcome=CaseOutcome.SOLVED,
            submitted_at=submitted,
            closed_at=closed,
            duration_days=40,
        ),
        CaseEvaluated(
            **common,
            submitter_kind=SubmitterKind.MUNICIPALITY,
            submitting_organisation="gm0363",
            life_domains=(LifeDomain.INCOME,),
            bottlenecks=(bottleneck,),
            outcome=CaseOutcome.SOLVED,
            submitted_at=submitted,
            closed_at=closed,
            duration_days=40,
            learning_points=(point,),
        ),
    ]
    wrapped = [new_event(e, subject=case_id, source=LOKET) for e in events]
    return wrapped, signal_id_for(wrapped[2].id, point.id)


async def response_records(secured: SecuredBroker, org: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        signals_responses_topic(org),
        **secured.admin().aiokafka_kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=5000)
        return [r for records in batch.values() for r in records]
    finally:
        await consumer.stop()


async def test_the_java_sample_answers_in_binary_mode_and_signalen_records_the_answer(
    secured: SecuredBroker,
    make_settings: Callable[..., SignalenSettings],
    serve: Any,
    issuer: LocalIssuer,
    unique: str,
) -> None:
    java = await asyncio.to_thread(build_sample)
    org = f"tj{unique[:8]}"
    await join(secured, org)
    settings = make_settings(
        SignalenSettings,
        kafka_bootstrap=secured.bootstrap,
        kafka_client_properties=secured.credentials_dir / "pmm-signalen.properties",
        group_prefix="pmm",  # the principal's groups: pmm.signalen.*
        responses_pattern=rf"^pmm\.signalen\.responses\.{org}$",
        reminder_scan_interval_s=3600,
    )
    app = create_app(settings)
    client = await serve(app)
    staff = bearer(issuer, "pmm", Role.PMM_STAFF, subject=f"staff-{unique}")
    register = app.state.deps.register
    await eventually(lambda: register.organisation(org), timeout_s=WAIT_S)

    events, signal_id = evaluated_case(org, unique)
    await produce(secured.principal("pmm-loket"), LOKET_CASES, *events)

    async def signal(check: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        r = await client.get(f"/signals/{signal_id}", headers=staff)
        body: dict[str, Any] | None = r.json() if r.status_code == 200 else None
        return body if body is not None and check(body) else None

    await eventually(lambda: signal(lambda s: bool(s["assignments"])), timeout_s=WAIT_S)

    properties: Path = secured.orgs_dir / org / "client.properties"
    assert Connection.from_properties(properties).security_protocol == "SASL_SSL"
    command = [
        *java,
        "nl.maatwerk.pmm.sample.SignalResponder",
        *("--properties", str(properties), "--org", org, "--oin", ORG_OIN),
        *("--max", "1", "--idle", str(WAIT_S)),
    ]
    ran = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=WAIT_S + 60, check=False
    )
    assert ran.returncode == 0, f"{ran.stdout}\n{ran.stderr}"
    assert f"answered {signal_id}" in ran.stdout

    answered = await eventually(
        lambda: signal(lambda s: s["assignments"][0]["status"] == "received"), timeout_s=WAIT_S
    )
    assert answered["assignments"][0]["organisation"] == org
    # On the wire: binary mode (attributes in ce_* headers, the data alone as the value).
    [record] = await response_records(secured, org)
    headers = {name: value.decode() for name, value in record.headers}
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "nl.maatwerk.signal.response"
    assert headers["ce_source"] == f"urn:nld:oin:{ORG_OIN}:systeem:pmm-java-sample"
    assert headers["ce_subject"] == signal_id
    assert headers["content-type"] == "application/json"
    uuid.UUID(headers["ce_id"])
    assert json.loads(record.value) == {
        "signal_id": signal_id,
        "organisation": org,
        "status": "received",
    }
