"""Who may do what on the broker: a principal per service and per organisation, with its ACLs.

The model (docs/decisions/0006-kafka-tenants.md):

- service ``<s>`` is principal ``User:pmm-<s>``: Write on the topics the catalogue says it
  produces, Read on the topics it consumes and Write on their dead-letter topics, Read on its
  own compacted changelogs (a replica replays them), Read on consumer groups ``pmm.<s>.*``;
  signalen may also create organisation topics (prefix ``pmm.signalen.``);
- organisation ``<o>`` is principal ``User:org-<o>``: Read on ``pmm.signalen.assigned.<o>``,
  Write on ``pmm.signalen.responses.<o>``, Read on consumer groups ``<o>.pmm-signals*``.
  Nothing else. Created when the organisation joins the register and removed when it leaves,
  by ``TenantProvisioner`` following the register's changelog.

All ACLs are ALLOW; with ``allow.everyone.if.no.acl.found=false`` everything else is denied.
The administration goes through confluent-kafka's AdminClient (SCRAM credentials and ACLs,
which aiokafka's admin client cannot do). Every operation is idempotent: a replay of the
changelog converges on the same principals and ACLs.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pmm_contracts.connection import Connection, write_properties
from pmm_contracts.topics import (
    ALL_SERVICES,
    CATALOGUE,
    TopicSpec,
    dead_letter_topic,
    org_topics,
    signals_assigned_topic,
    signals_responses_topic,
)

ResourceKind = Literal["TOPIC", "GROUP"]
PatternKind = Literal["LITERAL", "PREFIXED"]
Operation = Literal["READ", "WRITE", "CREATE"]
SCRAM_ITERATIONS = 8192
TIMEOUT_S = 30.0


def service_principal(service: str) -> str:
    return f"pmm-{service}"


def organisation_principal(org: str) -> str:
    return f"org-{org}"


def organisation_group_prefix(org: str) -> str:
    """Every consumer group of an organisation begins with this (the consumer kit's default)."""
    return f"{org}.pmm-signals"


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL for one principal, from any host."""

    resource: ResourceKind
    name: str
    pattern: PatternKind
    operation: Operation


def service_grants(
    service: str, specs: Sequence[TopicSpec] = CATALOGUE, *, group_prefix: str = "pmm"
) -> set[Grant]:
    """Exactly what ``service`` needs for ``specs`` (the catalogue and organisation topics)."""
    grants = {Grant("GROUP", f"{group_prefix}.{service}.", "PREFIXED", "READ")}
    for spec in specs:
        if spec.producer == service:
            grants.add(Grant("TOPIC", spec.name, "LITERAL", "WRITE"))
            if spec.cleanup_policy == "compact":  # its replicas replay their own changelog
                grants.add(Grant("TOPIC", spec.name, "LITERAL", "READ"))
        if service in spec.consumers:
            grants.add(Grant("TOPIC", spec.name, "LITERAL", "READ"))
            grants.add(Grant("TOPIC", dead_letter_topic(spec.name), "LITERAL", "WRITE"))
    if service == "signalen":  # provisions an organisation's topics on its first assignment
        grants.add(Grant("TOPIC", "pmm.signalen.assigned.", "PREFIXED", "CREATE"))
        grants.add(Grant("TOPIC", "pmm.signalen.responses.", "PREFIXED", "CREATE"))
    return grants


def organisation_grants(org: str) -> set[Grant]:
    """Read its signals, write its answers, use its own consumer groups: nothing else."""
    return {
        Grant("TOPIC", signals_assigned_topic(org), "LITERAL", "READ"),
        Grant("TOPIC", signals_responses_topic(org), "LITERAL", "WRITE"),
        Grant("GROUP", organisation_group_prefix(org), "PREFIXED", "READ"),
    }


# The admin side ---------------------------------------------------------------------------


def _admin(connection: Connection) -> Any:
    from confluent_kafka.admin import AdminClient

    config = connection.with_client_id("pmm-provisioner").librdkafka_config()
    return AdminClient({**config, "log_level": 3})


def _wait(futures: dict[Any, Any]) -> None:
    for future in futures.values():
        future.result(timeout=TIMEOUT_S)


def _binding(principal: str, grant: Grant) -> Any:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return AclBinding(
        ResourceType[grant.resource],
        grant.name,
        ResourcePatternType[grant.pattern],
        f"User:{principal}",
        "*",
        AclOperation[grant.operation],
        AclPermissionType.ALLOW,
    )


def _principal_filter(principal: str) -> Any:
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]  # None matches any name
        ResourcePatternType.ANY,
        f"User:{principal}",
        None,  # type: ignore[arg-type]  # any host
        AclOperation.ANY,
        AclPermissionType.ANY,
    )


def _as_grant(binding: Any) -> Grant | None:
    try:
        return Grant(
            binding.restype.name,
            binding.name,
            binding.resource_pattern_type.name,
            binding.operation.name,
        )
    except (AttributeError, ValueError):
        return None


def current_grants(admin: Any, principal: str) -> set[Grant]:
    bindings = admin.describe_acls(_principal_filter(principal)).result(timeout=TIMEOUT_S)
    return {g for g in (_as_grant(b) for b in bindings) if g is not None}


def apply_grants(
    admin: Any, principal: str, wanted: set[Grant], *, keep: Callable[[Grant], bool] | None = None
) -> tuple[int, int]:
    """Make ``principal``'s ACLs exactly ``wanted`` (leaving those ``keep`` accepts):
    (added, removed)."""
    from confluent_kafka.admin import AclBindingFilter, AclPermissionType

    have = current_grants(admin, principal)
    missing = sorted(wanted - have)
    extra = sorted(g for g in have - wanted if keep is None or not keep(g))
    if missing:
        _wait(admin.create_acls([_binding(principal, g) for g in missing]))
    if extra:
        filters = []
        for grant in extra:
            b = _binding(principal, grant)
            filters.append(
                AclBindingFilter(
                    b.restype,
                    b.name,
                    b.resource_pattern_type,
                    b.principal,
                    b.host,
                    b.operation,
                    AclPermissionType.ALLOW,
                )
            )
        _wait(admin.delete_acls(filters))
    return len(missing), len(extra)


def remove_grants(admin: Any, principal: str) -> None:
    _wait(admin.delete_acls([_principal_filter(principal)]))


def set_password(admin: Any, principal: str, password: str) -> None:
    """Create or replace ``principal``'s SCRAM-SHA-512 credential (idempotent)."""
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    _wait(
        admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(principal, info, password.encode())]
        )
    )


def remove_password(admin: Any, principal: str) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ScramMechanism, UserScramCredentialDeletion

    deletion = UserScramCredentialDeletion(principal, ScramMechanism.SCRAM_SHA_512)
    try:
        _wait(admin.alter_user_scram_credentials([deletion]))
    except KafkaException as exc:  # no credential: already removed
        if "RESOURCE_NOT_FOUND" not in str(exc) and "not found" not in str(exc).lower():
            raise


def new_password() -> str:
    return secrets.token_urlsafe(32)


def principal_connection(base: Connection, principal: str, password: str) -> Connection:
    """``base``'s address, protocol and CA with ``principal``'s credentials."""
    return Connection(
        bootstrap=base.bootstrap,
        security_protocol=base.security_protocol,
        sasl_mechanism=base.sasl_mechanism,
        sasl_username=principal,
        sasl_password=password,
        ssl_cafile=base.ssl_cafile,
    )


def _stored_password(path: Path) -> str | None:
    if not path.is_file():
        return None
    return Connection.from_properties(path).sasl_password


def provision_services(
    connection: Connection,
    specs: Sequence[TopicSpec],
    credentials_dir: Path,
    *,
    services: Iterable[str] = ALL_SERVICES,
) -> list[str]:
    """A principal per service with exactly its ACLs; its client properties in
    ``credentials_dir/pmm-<service>.properties`` (the password is kept across runs)."""
    admin = _admin(connection)
    report = []
    for service in services:
        principal = service_principal(service)
        path = credentials_dir / f"{principal}.properties"
        password = _stored_password(path) or new_password()
        set_password(admin, principal, password)
        wanted = service_grants(service, specs)
        added, removed = apply_grants(admin, principal, wanted, keep=_organisation_topic)
        conn = principal_connection(connection, principal, password)
        write_properties(path, conn.librdkafka_config(), comment=f"PMM service {service}")
        report.append(f"{principal}: {added} ACLs added, {removed} removed")
    return report


# Organisations ----------------------------------------------------------------------------


@dataclass
class OrganisationAccess:
    """Creates and removes organisations' principals; their client properties go to
    ``<orgs_dir>/<org>/client.properties`` (and ``client-java.properties``)."""

    admin_connection: Connection
    client_connection: Connection  # the address, protocol and CA organisations use
    orgs_dir: Path
    create_topics: Callable[[list[TopicSpec]], Any] | None = None

    def __post_init__(self) -> None:
        self._admin = _admin(self.admin_connection)

    def _path(self, org: str) -> Path:
        return self.orgs_dir / org / "client.properties"

    def grant(self, org: str, *, rotate: bool = False) -> Path:
        """The organisation's principal, password and ACLs (idempotent), and signalen's ACLs
        on its two topics; returns its client.properties."""
        principal = organisation_principal(org)
        path = self._path(org)
        password = (None if rotate else _stored_password(path)) or new_password()
        if self.create_topics is not None:
            self.create_topics(list(org_topics(org)))
        set_password(self._admin, principal, password)
        apply_grants(self._admin, principal, organisation_grants(org))
        signalen = service_principal("signalen")
        wanted = current_grants(self._admin, signalen) | _signalen_org_grants(org)
        apply_grants(self._admin, signalen, wanted)
        conn = principal_connection(self.client_connection, principal, password)
        note = f"PMM organisation {org}: keep this file secret"
        write_properties(path, conn.librdkafka_config(), comment=note)
        write_properties(path.with_name("client-java.properties"), conn.java_config(), comment=note)
        return path

    def revoke(self, org: str) -> None:
        """Remove the organisation's credential and ACLs, and signalen's on its topics."""
        principal = organisation_principal(org)
        remove_grants(self._admin, principal)
        remove_password(self._admin, principal)
        signalen = service_principal("signalen")
        have = current_grants(self._admin, signalen)
        apply_grants(self._admin, signalen, have - _signalen_org_grants(org))
        for name in ("client.properties", "client-java.properties"):
            (self.orgs_dir / org / name).unlink(missing_ok=True)


def _organisation_topic(grant: Grant) -> bool:
    """Signalen's ACLs on one organisation's topics follow the register (TenantProvisioner)."""
    return (
        grant.resource == "TOPIC"
        and grant.pattern == "LITERAL"
        and grant.name.startswith(("pmm.signalen.assigned.", "pmm.signalen.responses."))
    )


def _signalen_org_grants(org: str) -> set[Grant]:
    grants = service_grants("signalen", org_topics(org))
    return {g for g in grants if g.resource == "TOPIC" and g.pattern == "LITERAL"}


@dataclass
class TenantProvisioner:
    """Follows the register's organisation changelog and keeps the broker's principals in step:
    a member gets its principal and ACLs, an organisation that left (or was removed) loses
    them. Reads the compacted topic from the start without a consumer group, so every start
    is a full, idempotent replay; ``run(until_caught_up=True)`` stops after the replay."""

    access: OrganisationAccess
    consumer_connection: Connection
    topic: str = "pmm.register.organisations"
    members: set[str] | None = None

    async def run(
        self, stop: asyncio.Event | None = None, *, until_caught_up: bool = False
    ) -> None:
        from aiokafka import AIOKafkaConsumer

        from pmm_contracts.envelope import EventDecodeError, decode_event
        from pmm_contracts.events.register import OrganisationState

        stop = stop or asyncio.Event()
        self.members = set()
        consumer = AIOKafkaConsumer(
            **self.consumer_connection.with_client_id("pmm-tenants").kwargs(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            while self.topic not in await consumer.topics():  # loads the metadata
                if stop.is_set() or until_caught_up:
                    return
                await asyncio.sleep(1.0)
            # Without a group every partition is assigned, from offset 0 (nothing committed).
            consumer.subscribe([self.topic])
            end: dict[Any, int] | None = None
            state: dict[str, bool] = {}
            caught_up = False
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=300, max_records=500)
                for records in batch.values():
                    for record in records:
                        if record.key is None:
                            continue
                        org = record.key.decode()
                        if record.value is None:
                            state[org] = False
                            continue
                        try:
                            event = decode_event(
                                record.value, {OrganisationState.EVENT_TYPE: OrganisationState}
                            )
                        except EventDecodeError:
                            continue  # not the register's: never a grant, never a removal
                        if isinstance(event.data, OrganisationState):
                            state[event.data.code] = event.data.is_member
                if not caught_up and end is None and consumer.assignment():
                    end = await consumer.end_offsets(list(consumer.assignment()))
                if not caught_up and end is not None:
                    positions = {tp: await consumer.position(tp) for tp in end}
                    caught_up = all(positions[tp] >= offset for tp, offset in end.items())
                if caught_up and state:
                    await asyncio.to_thread(self._apply, dict(state))
                    state.clear()
                if caught_up and until_caught_up:
                    return
        finally:
            await consumer.stop()

    def _apply(self, changes: dict[str, bool]) -> None:
        assert self.members is not None
        for org, member in sorted(changes.items()):
            if member:
                self.access.grant(org)
                self.members.add(org)
            else:
                self.access.revoke(org)
                self.members.discard(org)
