"""Mongo persistence of the register: one document per organisation and per professional.

Writes go through the runtime's change loop (state, changelog event and audit entry in one
atomic update); the queries the use cases ask live here and nowhere else. Dates are ISO
strings; the store's ``_version`` is the entry's version on the changelog.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError, OperationFailure

from pmm_contracts.envelope import EventData
from pmm_contracts.events.register import (
    OrganisationState,
    ProfessionalState,
    VerificationRequested,
)
from pmm_contracts.topics import (
    REGISTER_ORGANISATIONS,
    REGISTER_PROFESSIONALS,
    REGISTER_VERIFICATIONS,
)
from pmm_register.adapters.search_index import Filters, SearchIndex
from pmm_register.domain.model import DuplicateEmail, Organisation, Professional
from pmm_runtime.changes import Aggregates
from pmm_runtime.errors import NoSuchAggregate
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import AUDIT, VERSION, AggregateStore, Tombstone, audit_entry

ERASED_FIELDS: Document = {
    "name": None,
    "email": None,
    "phone": None,
    "urgent_phone": None,
    "function": None,
    "terms": [],
    "tags": [],
}
"""What a removal (leaving, AVG erasure) blanks out of the document."""


class Organisations(Aggregates[Organisation]):
    name = "organisation"

    def __init__(self, store: AggregateStore) -> None:
        super().__init__(store, Organisation, topic=REGISTER_ORGANISATIONS)

    def dump(self, aggregate: Organisation) -> Document:
        state = aggregate.state().model_dump(mode="json", exclude={"code", "version"})
        return {**state, "history": aggregate.history}

    def load(self, document: Mapping[str, Any]) -> Organisation:
        state = OrganisationState.model_validate(
            {**document, "code": document["_id"], "version": document[VERSION]}
        )
        fields = {n: getattr(state, n) for n in type(state).model_fields if n != "is_member"}
        return Organisation(**fields, history=list(document.get("history", [])))

    async def page(self, *, skip: int, limit: int) -> tuple[int, list[Organisation]]:
        """One page of every organisation, by code (a small collection)."""
        total = await self.collection.count_documents({})
        cursor = self.collection.find({}, {AUDIT: 0}).sort("_id", ASCENDING)
        return total, [self.load(d) for d in await cursor.skip(skip).limit(limit).to_list(None)]


class ProfessionalStore(AggregateStore):
    """The professionals' collection, whose unique ``email_key`` index makes a second entry
    with the same address a ``DuplicateEmail`` (409), on creation and on change alike."""

    async def create(self, aggregate_id: str, state: Mapping[str, Any], *a: Any, **k: Any) -> bool:
        if await super().create(aggregate_id, state, *a, **k):
            return True
        if await self.get(aggregate_id) is None:  # refused, but not for its id: the address
            raise DuplicateEmail(str(state.get("email")))
        return False

    async def update(self, aggregate_id: str, **options: Any) -> Document | None:
        try:
            return await super().update(aggregate_id, **options)
        except OperationFailure as exc:
            # MongoDB says E11000; FerretDB 1.x says InternalError naming the SQLite index.
            if not isinstance(exc, DuplicateKeyError) and "UNIQUE constraint" not in str(exc):
                raise
            raise DuplicateEmail(str(options["set_fields"].get("email"))) from exc


class Professionals(Aggregates[Professional]):
    """The professionals, and this replica's search index of them.

    The index learns this replica's own writes at once (read-your-writes); the other
    replicas' writes reach it through the changelog. Until it has replayed the changelog,
    searches go to the store (same filters, same order).
    """

    name = "professional"

    def __init__(self, store: AggregateStore, index: SearchIndex | None = None) -> None:
        super().__init__(
            ProfessionalStore(store.collection, store.pending),
            Professional,
            topic=REGISTER_PROFESSIONALS,
        )
        self.index = index

    def topic(self, aggregate: Professional, event: EventData) -> str:
        if isinstance(event, VerificationRequested):
            return REGISTER_VERIFICATIONS
        return self.default_topic

    def dump(self, aggregate: Professional) -> Document:
        state = aggregate.state().model_dump(mode="json", exclude={"id", "version"})
        return {
            **state,
            "email_key": aggregate.email.lower(),
            "terms": aggregate.terms(),
            "available": aggregate.availability.available,
            "removed": False,
        }

    def load(self, document: Mapping[str, Any]) -> Professional:
        if document.get("removed"):  # the change loop never touches a removed entry
            raise NoSuchAggregate(f"no professional {document['_id']!r} in the register")
        state = {**document, "id": document["_id"], "version": document[VERSION]}
        return Professional.from_state(ProfessionalState.model_validate(state))

    async def get(self, aggregate_id: str) -> Professional | None:
        # By _id alone: FerretDB pushes only a bare _id filter down to its SQLite index.
        document = await self.store.get(aggregate_id)
        return self.load(document) if document and not document.get("removed") else None

    async def written(self, aggregate: Professional) -> None:
        if self.index is not None:
            self.index.apply(replace(aggregate))

    async def create_indexes(self) -> None:
        p = self.collection
        await p.create_index("email_key", unique=True)
        await p.create_index([("organisation", ASCENDING), ("roles", ASCENDING)])
        await p.create_index([("terms", ASCENDING)])
        await p.create_index([("life_domains", ASCENDING)])
        await p.create_index(
            [("removed", ASCENDING), ("available", DESCENDING), ("name", ASCENDING)]
        )
        await p.create_index([("removed", ASCENDING), ("last_verified_on", ASCENDING)])

    async def remove(self, professional: Professional, *, actor: str, reason: str | None) -> bool:
        """Erase the contact data, keep only a removed marker, and publish a tombstone, in
        one write. The audit trail keeps who changed what and when, without the old and
        new values (they hold the contact data being erased). False when the entry changed
        meanwhile."""
        document = await self.store.get(professional.id)
        if document is None or document.get(VERSION) != professional.version:
            return False
        trail = [
            {k: v for k, v in entry.items() if k not in ("old", "new")}
            for entry in document.get(AUDIT, [])
        ]
        trail.append(audit_entry(actor=actor, action="professional.removed", reason=reason))
        saved = await self.store.update(
            professional.id,
            expected_version=professional.version,
            set_fields={
                **ERASED_FIELDS,
                "removed": True,
                "email_key": f"removed:{professional.id}",
                AUDIT: trail,
            },
            events=[Tombstone(REGISTER_PROFESSIONALS, professional.id)],
        )
        if saved is not None and self.index is not None:
            self.index.remove(professional.id, professional.version + 1)
        return saved is not None

    # Queries -----------------------------------------------------------------------------------

    async def search(
        self, filters: Filters, *, skip: int, limit: int
    ) -> tuple[int, list[Professional]]:
        """One page of the entries that match every filter, available first, then by name;
        from the index once it is ready, else from the store."""
        if self.index is not None and self.index.ready:
            return self.index.search(filters, skip=skip, limit=limit)
        query = _store_query(filters)
        total = await self.collection.count_documents(query)
        cursor = (
            self.collection.find(query, {AUDIT: 0})
            .sort([("available", DESCENDING), ("name", ASCENDING), ("_id", ASCENDING)])
            .skip(skip)
            .limit(limit)
        )
        return total, [self.load(d) for d in await cursor.to_list(None)]

    async def due_for_verification(self, verified_before: date, limit: int) -> list[str]:
        """Ids of the entries not verified since ``verified_before`` and not asked yet: from
        the index once it is ready (no store scan on the periodic path), else from the
        store (only while the replica replays the changelog after its start)."""
        if self.index is not None and self.index.ready:
            return self.index.due_for_verification(verified_before, limit)
        cursor = self.collection.find(
            {
                "removed": False,
                "stale": False,
                "last_verified_on": {"$lte": verified_before.isoformat()},
            },
            {"_id": 1},
        ).limit(limit)
        return [str(d["_id"]) for d in await cursor.to_list(None)]


def _store_query(filters: Filters) -> Document:
    query: Document = {"removed": False}
    if filters.organisation is not None:
        query["organisation"] = filters.organisation
    if len(filters.roles) == 1:
        query["roles"] = filters.roles[0]
    elif filters.roles:
        query["roles"] = {"$in": list(filters.roles)}
    if filters.life_domain is not None:
        query["life_domains"] = filters.life_domain
    if filters.tag is not None:
        query["tags"] = filters.tag
    if filters.terms:
        query["terms"] = {"$all": list(filters.terms)}
    return query
