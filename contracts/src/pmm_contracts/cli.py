"""``pmm-contracts``: provision the topic catalogue and (re)generate the JSON Schemas.

pmm-contracts topics [--bootstrap HOST:PORT] [--org CODE ...]
pmm-contracts schemas [--check] [--allow-breaking]
pmm-contracts catalogue
pmm-contracts dlq replay --topic TOPIC [--valid-only] [--dry-run]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from pmm_contracts import schemas
from pmm_contracts.events import ALL_EVENTS
from pmm_contracts.topics import CATALOGUE, TopicSpec, dead_letter_topic, org_topics

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


def all_specs(orgs: list[str]) -> list[TopicSpec]:
    specs = list(CATALOGUE)
    for org in orgs:
        specs.extend(org_topics(org))
    return specs


async def provision(bootstrap: str, specs: list[TopicSpec]) -> list[str]:
    """Create every topic (and the dead-letter topic of each consumed one) that is missing."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # the [admin] extra

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="pmm-provisioner")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted: list[NewTopic] = []
        for spec in specs:
            if spec.name not in existing:
                wanted.append(NewTopic(spec.name, spec.partitions, 1, topic_configs=spec.config()))
            dlq = dead_letter_topic(spec.name)
            if spec.consumers and dlq not in existing:
                wanted.append(NewTopic(dlq, 1, 1, topic_configs={"retention.ms": str(-1)}))
        if wanted:
            await admin.create_topics(wanted)
        return [topic.name for topic in wanted]
    finally:
        await admin.close()


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pmm-contracts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    topics = sub.add_parser("topics", help="create every topic of the catalogue that is missing")
    topics.add_argument(
        "--bootstrap", default=os.environ.get("PMM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    topics.add_argument(
        "--org",
        action="append",
        default=[],
        help="also the signal topics of this organisation (repeatable)",
    )
    gen = sub.add_parser("schemas", help="generate contracts/schemas/")
    gen.add_argument("--check", action="store_true", help="fail if the files are out of date")
    gen.add_argument("--allow-breaking", action="store_true")
    sub.add_parser("catalogue", help="print the topic catalogue")
    dlq = sub.add_parser("dlq", help="dead-letter topics")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    again = dlq_sub.add_parser("replay", help="move dead letters back to their topic")
    again.add_argument("--topic", required=True, help="the original topic (not the .dlq)")
    again.add_argument(
        "--bootstrap", default=os.environ.get("PMM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    again.add_argument(
        "--valid-only", action="store_true", help="only what decodes as a known CloudEvent now"
    )
    again.add_argument("--dry-run", action="store_true", help="list, produce nothing")
    args = parser.parse_args(argv)

    if args.command == "dlq":
        from pmm_contracts.dlq import replay

        report = asyncio.run(
            replay(args.bootstrap, args.topic, valid_only=args.valid_only, dry_run=args.dry_run)
        )
        print("\n".join(report.lines()))
        return 0

    if args.command == "topics":
        created = asyncio.run(provision(args.bootstrap, all_specs(args.org)))
        print(
            f"topics: {len(created)} created"
            + (f": {', '.join(created)}" if created else " (all present)")
        )
        return 0
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
