"""``pmm-contracts``: provision the topic catalogue and (re)generate the JSON Schemas.

pmm-contracts topics [--bootstrap HOST:PORT] [--org CODE ...]
pmm-contracts schemas [--check] [--allow-breaking]
pmm-contracts catalogue
pmm-contracts dlq replay --topic TOPIC [--valid-only] [--dry-run]
pmm-contracts dlq replay --topic TOPIC [--valid-only] [--dry-run]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pmm_contracts import schemas, tenants
from pmm_contracts.connection import Connection, credentials_dir, local_connection
from pmm_contracts.events import ALL_EVENTS
from pmm_contracts.topics import CATALOGUE, TopicSpec, dead_letter_topic, org_topics

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def all_specs(orgs: list[str]) -> list[TopicSpec]:
    specs = list(CATALOGUE)
    for org in orgs:
        specs.extend(org_topics(org))
    return specs


@dataclass(frozen=True)
class Durability:
    """Replication of the topics we create (local 1/1; compose and Kubernetes 3/2)."""

    replication_factor: int = 1
    min_insync_replicas: int = 1

    @classmethod
    def from_env(cls) -> Durability:
        env = os.environ.get
        return cls(
            int(env("PMM_KAFKA_REPLICATION_FACTOR") or 1),
            int(env("PMM_KAFKA_MIN_INSYNC_REPLICAS") or 1),
        )


def _wanted_topics(
    specs: list[TopicSpec], durability: Durability
) -> list[tuple[str, int, dict[str, str]]]:
    wanted = []
    isr = {"min.insync.replicas": str(durability.min_insync_replicas)}
    for spec in specs:
        wanted.append((spec.name, spec.partitions, {**spec.config(), **isr}))
        if spec.consumers:
            wanted.append((dead_letter_topic(spec.name), 1, {"retention.ms": str(-1), **isr}))
    return wanted


def _provision(
    connection: Connection, specs: list[TopicSpec], durability: Durability, check_drift: bool
) -> tuple[list[str], list[str]]:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

    config = connection.with_client_id("pmm-provisioner").librdkafka_config()
    admin = AdminClient({**config, "log_level": 3})
    metadata = admin.list_topics(timeout=30)
    existing = metadata.topics
    wanted = _wanted_topics(specs, durability)
    missing = [
        NewTopic(name, partitions, durability.replication_factor, config=config)
        for name, partitions, config in wanted
        if name not in existing
    ]
    created = []
    if missing:
        for name, future in admin.create_topics(missing, request_timeout=30).items():
            try:
                future.result(timeout=30)
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # a concurrent provisioner
                    raise
    drift: list[str] = []
    present = [(n, p, c) for n, p, c in wanted if n in existing]
    if present and check_drift:  # DescribeConfigs: the admin may, a service need not
        resources = [ConfigResource(ResourceType.TOPIC, name) for name, _, _ in present]
        configs = admin.describe_configs(resources, request_timeout=30)
        by_name = {resource.name: future for resource, future in configs.items()}
        for name, partitions, config in present:
            topic = existing[name]
            if len(topic.partitions) != partitions:
                drift.append(f"{name}: {len(topic.partitions)} partitions, wanted {partitions}")
            replicas = min((len(p.replicas) for p in topic.partitions.values()), default=0)
            if replicas != durability.replication_factor:
                drift.append(
                    f"{name}: replication factor {replicas}, wanted {durability.replication_factor}"
                )
            actual = by_name[name].result(timeout=30)
            for key, value in config.items():
                have = actual[key].value if key in actual else None
                if have != value:
                    drift.append(f"{name}: {key}={have}, wanted {value}")
    return created, drift


async def provision(
    bootstrap: str,
    specs: list[TopicSpec],
    *,
    connection: Connection | None = None,
    durability: Durability | None = None,
    drift: list[str] | None = None,
) -> list[str]:
    """Create every topic (and the dead-letter topic of each consumed one) that is missing.

    A bare ``bootstrap`` uses the local broker's admin credentials when it is secured. The
    differences between the catalogue and the broker (partitions, replication factor,
    configs) of topics that exist are appended to ``drift`` when it is given (that needs
    DescribeConfigs, which the admin has and a service does not); nothing existing is changed.
    """
    conn = connection or local_connection(bootstrap)
    created, found = await asyncio.to_thread(
        _provision, conn, specs, durability or Durability.from_env(), drift is not None
    )
    if drift is not None:
        drift.extend(found)
    return created


def write_schemas(check: bool, allow_breaking: bool) -> int:
    generated = schemas.generate(ALL_EVENTS)
    existing = schemas.read_dir(SCHEMA_DIR) if SCHEMA_DIR.exists() else {}
    problems = []
    for name, old in existing.items():
        if name not in generated:
            problems.append(f"{name}: event type removed")
            continue
        problems.extend(f"{name}: {p}" for p in schemas.breaking_changes(old, generated[name]))
    if problems and not allow_breaking:
        print("Breaking schema changes (publish a .v2 type instead):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    stale = [n for n, s in generated.items() if existing.get(n) != s]
    if check:
        if stale:
            print(f"schemas out of date: {stale}; run `make schemas`", file=sys.stderr)
            return 1
        print(f"{len(generated)} schemas up to date")
        return 0
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    for name, schema in generated.items():
        (SCHEMA_DIR / name).write_text(schemas.dumps(schema), encoding="utf-8")
    print(f"wrote {len(generated)} schemas to {SCHEMA_DIR} ({len(stale)} changed)")
    return 0


def _admin_connection(args: argparse.Namespace) -> Connection:
    if args.admin_properties:
        return Connection.from_properties(args.admin_properties, bootstrap=args.bootstrap)
    return local_connection(args.bootstrap)


def _org_access(args: argparse.Namespace, admin: Connection) -> tenants.OrganisationAccess:
    """Organisations connect to the TLS listener when the admin's directory names one."""
    tls_file = Path(args.credentials_dir) / "admin-tls.properties"
    client = Connection.from_properties(tls_file) if tls_file.is_file() else admin

    def create(specs: list[TopicSpec]) -> None:
        asyncio.run(provision(admin.bootstrap, specs, connection=admin))

    return tenants.OrganisationAccess(admin, client, Path(args.orgs_dir), create_topics=create)


def _topics(args: argparse.Namespace) -> int:
    admin = _admin_connection(args)
    specs = all_specs(args.org)
    drift: list[str] = []
    durability = Durability(args.replication_factor, args.min_insync_replicas)
    created = asyncio.run(
        provision(args.bootstrap, specs, connection=admin, durability=durability, drift=drift)
    )
    print(
        f"topics: {len(created)} created"
        + (f": {', '.join(created)}" if created else " (all present)")
    )
    for line in drift:
        print(f"drift: {line}")
    if admin.uses_sasl:
        for line in tenants.provision_services(admin, specs, Path(args.credentials_dir)):
            print(f"principal {line}")
    return 0


class _JsonLines(logging.Formatter):
    """One JSON object a line, in the fields the services' own log lines carry, for the
    long-running follower that `make run` starts next to them (its log is read as theirs)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "service": "tenants",
            "logger": record.name,
            "event": record.getMessage(),
            "level": record.levelname.lower(),
            "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def _log_json() -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    # A no-op where logging is configured already (a test calling main() in-process).
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    return logging.getLogger("pmm_contracts.tenants")


def _tenants(args: argparse.Namespace) -> int:
    log = _log_json()  # every line JSON, the client libraries' too
    admin = _admin_connection(args)
    if not admin.uses_sasl:
        log.info("the broker is not secured (PMM_KAFKA_SECURITY=scram); nothing to do")
        return 0
    provisioner = tenants.TenantProvisioner(_org_access(args, admin), admin)
    log.info("following the register's organisations")
    asyncio.run(provisioner.run(until_caught_up=args.once))
    log.info("%d member organisations have a principal", len(provisioner.members or ()))
    return 0


def _org_credentials(args: argparse.Namespace) -> int:
    admin = _admin_connection(args)
    if not admin.uses_sasl:
        print(
            "org-credentials: the broker is not secured (PMM_KAFKA_SECURITY=scram)", file=sys.stderr
        )
        return 1
    access = _org_access(args, admin)
    provisioner = tenants.TenantProvisioner(access, admin)
    asyncio.run(provisioner.run(until_caught_up=True))
    if args.org not in (provisioner.members or set()):
        print(f"org-credentials: {args.org} is not a member of the register", file=sys.stderr)
        return 1
    path = (
        access.grant(args.org, rotate=True)
        if args.rotate
        else access.orgs_dir / args.org / "client.properties"
    )
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="pmm-contracts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    admin_args = argparse.ArgumentParser(add_help=False)
    admin_args.add_argument("--bootstrap", default=env("PMM_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    admin_args.add_argument(
        "--admin-properties",
        default=env("PMM_KAFKA_ADMIN_PROPERTIES"),
        help="the admin principal's client.properties (default: the local broker's)",
    )
    admin_args.add_argument(
        "--credentials-dir",
        default=str(credentials_dir()),
        help="the services' client properties are written here",
    )
    admin_args.add_argument("--orgs-dir", default=env("PMM_ORGS_DIR", ".local/orgs"))
    durability = Durability.from_env()
    topics = sub.add_parser(
        "topics", parents=[admin_args], help="create every missing topic; principals and ACLs"
    )
    topics.add_argument(
        "--org",
        action="append",
        default=[],
        help="also the signal topics of this organisation (repeatable)",
    )
    topics.add_argument("--replication-factor", type=int, default=durability.replication_factor)
    topics.add_argument("--min-insync-replicas", type=int, default=durability.min_insync_replicas)
    follow = sub.add_parser(
        "tenants", parents=[admin_args], help="organisations' principals from the register"
    )
    follow.add_argument("--once", action="store_true", help="replay the changelog, then exit")
    creds = sub.add_parser(
        "org-credentials", parents=[admin_args], help="an organisation's client.properties"
    )
    creds.add_argument("--org", required=True)
    creds.add_argument("--rotate", action="store_true", help="a new password (the old one stops)")
    gen = sub.add_parser("schemas", help="generate contracts/schemas/")
    gen.add_argument("--check", action="store_true", help="fail if the files are out of date")
    gen.add_argument("--allow-breaking", action="store_true")
    sub.add_parser("catalogue", help="print the topic catalogue")
    dlq = sub.add_parser("dlq", help="dead-letter topics")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    again = dlq_sub.add_parser(
        "replay", parents=[admin_args], help="move dead letters back to their topic"
    )
    again.add_argument("--topic", required=True, help="the original topic (not the .dlq)")
    again.add_argument(
        "--valid-only", action="store_true", help="only what decodes as a known CloudEvent now"
    )
    again.add_argument("--dry-run", action="store_true", help="list, produce nothing")
    args = parser.parse_args(argv)

    if args.command == "dlq":
        from pmm_contracts.dlq import replay

        admin = _admin_connection(args)  # --admin-properties, else the local broker's admin
        client_kwargs = admin.with_client_id("pmm-dlq-replay").aiokafka_kwargs()
        client_kwargs.pop("bootstrap_servers")
        report = asyncio.run(
            replay(
                admin.bootstrap,
                args.topic,
                valid_only=args.valid_only,
                dry_run=args.dry_run,
                client_kwargs=client_kwargs,
            )
        )
        print("\n".join(report.lines()))
        return 0

    if args.command == "topics":
        return _topics(args)
    if args.command == "tenants":
        return _tenants(args)
    if args.command == "org-credentials":
        return _org_credentials(args)
    if args.command == "schemas":
        return write_schemas(args.check, args.allow_breaking)
    for spec in all_specs(args.org if hasattr(args, "org") else []):
        consumers = ", ".join(spec.consumers) or "-"
        print(
            f"{spec.name:45} {spec.partitions:>2}p {spec.cleanup_policy:8} "
            f"{spec.producer} -> {consumers}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
