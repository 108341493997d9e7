"""The ACL model: each principal gets exactly what its catalogue entries need."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmm_contracts.connection import Connection, read_properties, write_properties
from pmm_contracts.tenants import Grant, organisation_grants, service_grants
from pmm_contracts.topics import (
    ALL_SERVICES,
    CATALOGUE,
    LOKET_CASES,
    REGISTER_ORGANISATIONS,
    REGISTER_PROFESSIONALS,
    org_topics,
)


def test_an_organisation_reads_its_signals_writes_its_answers_and_nothing_else() -> None:
    assert organisation_grants("uwv") == {
        Grant("TOPIC", "pmm.signalen.assigned.uwv", "LITERAL", "READ"),
        Grant("TOPIC", "pmm.signalen.responses.uwv", "LITERAL", "WRITE"),
        Grant("GROUP", "uwv.pmm-signals", "PREFIXED", "READ"),
    }


def test_the_loket_writes_only_its_case_topic_and_the_dead_letters_of_what_it_reads() -> None:
    grants = service_grants("loket")
    writes = {g.name for g in grants if g.operation == "WRITE"}
    reads = {g.name for g in grants if g.operation == "READ" and g.resource == "TOPIC"}
    assert writes == {LOKET_CASES} | {f"{t}.dlq" for t in reads}
    assert reads == {
        REGISTER_ORGANISATIONS,
        REGISTER_PROFESSIONALS,
        "pmm.let.escalations",
        "pmm.overbrugging.applications",
    }
    assert Grant("GROUP", "pmm.loket.", "PREFIXED", "READ") in grants


@pytest.mark.parametrize("service", ALL_SERVICES)
def test_every_service_writes_exactly_its_own_topics_and_dead_letters(service: str) -> None:
    specs = [*CATALOGUE, *org_topics("uwv")]
    grants = service_grants(service, specs)
    own = {s.name for s in specs if s.producer == service}
    consumed = {s.name for s in specs if service in s.consumers}
    writes = {g.name for g in grants if g.operation == "WRITE"}
    assert writes == own | {f"{t}.dlq" for t in consumed}
    assert all(
        g.pattern == "LITERAL"
        for g in grants
        if g.operation in ("READ", "WRITE") and g.resource == "TOPIC"
    )
    assert {g.name for g in grants if g.resource == "GROUP"} == {f"pmm.{service}."}
    # No organisation's principal, no wildcard, nothing on the cluster.
    assert not any(g.name in ("", "*", "pmm", "pmm.") for g in grants)


def test_a_properties_file_round_trips_for_kcat_and_the_java_client(tmp_path: Path) -> None:
    conn = Connection(
        bootstrap="127.0.0.1:9094",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="org-uwv",
        sasl_password="s3cret=with=equals",
        ssl_cafile="/etc/pmm/ca.pem",
    )
    path = tmp_path / "client.properties"
    write_properties(path, conn.librdkafka_config(), comment="test")
    assert path.stat().st_mode & 0o077 == 0  # only its owner reads a password
    assert Connection.from_properties(path) == conn
    assert set(read_properties(path)) == {
        "bootstrap.servers",
        "security.protocol",
        "sasl.mechanism",
        "sasl.username",
        "sasl.password",
        "ssl.ca.location",
    }
    java = conn.java_config()
    assert java["ssl.truststore.type"] == "PEM"
    assert 'username="org-uwv"' in java["sasl.jaas.config"]


def test_sasl_without_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="username"):
        Connection(security_protocol="SASL_PLAINTEXT")
