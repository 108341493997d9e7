"""Follow the register's compacted changelogs into a service's own database.

Every service that needs to know organisations or professionals (who is a regievoerder,
which executives sit in the LET, which organisation gets a signal) keeps this read model
instead of reading the register's database. It can be rebuilt from offset 0 at any time:
each message is the full current state, a tombstone removes the entry (and with it the
professional's contact data), and an older version never overwrites a newer one.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from pmm_contracts.envelope import CloudEvent
from pmm_contracts.events.register import OrganisationState, ProfessionalState
from pmm_contracts.topics import REGISTER_ORGANISATIONS, REGISTER_PROFESSIONALS
from pmm_runtime.mongo import Document
from pmm_runtime.platform import Platform
from pmm_runtime.writes import Writes


class RegisterReadModel:
    """Organisations and professionals as last published by the register."""

    def __init__(self, platform: Platform, *, prefix: str = "register_") -> None:
        self.organisations: AsyncCollection[Document] = platform.db[prefix + "organisations"]
        self.professionals: AsyncCollection[Document] = platform.db[prefix + "professionals"]
        self.writes = platform.writes
        platform.on_startup(self._indexes)
        platform.subscribe(
            REGISTER_ORGANISATIONS,
            handlers={OrganisationState: self._on_organisation},
            purpose="register-organisations",
            on_tombstone=self._remove_organisation,
            description="Read model of the register's organisations",
        )
        platform.subscribe(
            REGISTER_PROFESSIONALS,
            handlers={ProfessionalState: self._on_professional},
            purpose="register-professionals",
            on_tombstone=self._remove_professional,
            description="Read model of the register's professionals",
        )

    async def _indexes(self) -> None:
        await self.professionals.create_index([("organisation", ASCENDING), ("roles", ASCENDING)])

    async def _on_organisation(self, event: CloudEvent[OrganisationState]) -> None:
        data = event.data
        await _upsert_newer(
            self.writes, self.organisations, data.code, data.model_dump(mode="json")
        )

    async def _on_professional(self, event: CloudEvent[ProfessionalState]) -> None:
        data = event.data
        await _upsert_newer(self.writes, self.professionals, data.id, data.model_dump(mode="json"))

    async def _remove_organisation(self, key: str) -> None:
        await self.organisations.delete_one({"_id": key})

    async def _remove_professional(self, key: str) -> None:
        await self.professionals.delete_one({"_id": key})

    # Queries -------------------------------------------------------------------------------

    async def organisation(self, code: str) -> Document | None:
        return await self.organisations.find_one({"_id": code})

    async def is_member(self, code: str) -> bool:
        # By bare _id, the field checked here: FerretDB 1.24 answers any other filter by
        # decoding every organisation (decision 0008).
        found = await self.organisations.find_one({"_id": code}, {"is_member": 1})
        return found is not None and found.get("is_member") is True

    async def professional(self, professional_id: str) -> Document | None:
        return await self.professionals.find_one({"_id": professional_id})

    async def with_role(self, role: str, organisation: str | None = None) -> list[Document]:
        query: dict[str, Any] = {"roles": role}
        if organisation is not None:
            query["organisation"] = organisation
        return await self.professionals.find(query).sort("_id", ASCENDING).to_list(None)


async def _upsert_newer(
    writes: Writes, collection: AsyncCollection[Document], key: str, state: Document
) -> None:
    """Write ``state`` unless a newer or equal version is stored already (idempotent).

    The common cases by bare ``_id`` (FerretDB evaluates any other filter by decoding every
    document): the lookup, and the insert of a new key. The replace is conditional on the
    older version through ``Writes`` (serialized per document on FerretDB), so two
    consumers of one key during a rebalance cannot put an older state over a newer one.
    """
    stored = await collection.find_one({"_id": key}, {"version": 1})
    if stored is not None and int(stored.get("version", 0)) >= int(state["version"]):
        return  # a redelivery or an older state changes nothing
    if stored is None:
        with contextlib.suppress(DuplicateKeyError):
            await collection.insert_one({"_id": key, **state})
            return
    await writes.replace_one(
        collection, {"_id": key, "version": {"$lt": int(state["version"])}}, {"_id": key, **state}
    )
