"""``pmm-register seed [FILE]``: load the seed organisations and professionals.

Writes through the use cases straight into the register's store (with their changelog
events in the outbox); the running register service's relay publishes them. Idempotent:
what exists already is left as it is, so users can edit the file and run it again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from pmm_register.adapters.repository import Organisations, Professionals
from pmm_register.service import commands as c
from pmm_register.service import usecases as uc
from pmm_register.settings import RegisterSettings
from pmm_runtime.auth import Identity
from pmm_runtime.changes import Changes
from pmm_runtime.errors import Conflict
from pmm_runtime.mongo import create_client
from pmm_runtime.outbox import PENDING_COLLECTION, AggregateStore, PendingOutbox

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "seed" / "organisations.json"
SEEDER = Identity(subject="seed", organisation="pmm", roles=frozenset({"register_admin"}))


async def seed(settings: RegisterSettings, data: dict[str, Any]) -> dict[str, int]:
    client = create_client(settings.mongodb_url, app_name="pmm-register-seed")
    db = client[settings.database_name]
    pending = PendingOutbox(db[PENDING_COLLECTION])  # announces the events to the relay
    deps = uc.Deps(
        organisations=Organisations(AggregateStore(db["organisations"], pending)),
        professionals=Professionals(AggregateStore(db["professionals"], pending)),
        changes=Changes(source=settings.source),
    )
    await deps.professionals.create_indexes()
    counts = {"organisations": 0, "professionals": 0}
    try:
        for item in data.get("organisations", []):
            if await deps.organisations.get(item["code"]) is None:
                await uc.create_organisation(
                    deps, SEEDER, c.CreateOrganisation(**item), reason="seed"
                )
                counts["organisations"] += 1
        for item in data.get("professionals", []):
            if await deps.professionals.get(item["id"]) is None:
                try:
                    await uc.register_professional(deps, SEEDER, c.RegisterProfessional(**item))
                except Conflict:
                    continue
                counts["professionals"] += 1
    finally:
        await client.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pmm-register seed", description=__doc__)
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    args = parser.parse_args(argv)
    data = json.loads(args.file.read_text(encoding="utf-8"))
    counts = asyncio.run(seed(RegisterSettings(), data))
    print(
        f"seed: {counts['organisations']} organisations and "
        f"{counts['professionals']} professionals created from {args.file}"
    )
    return 0
