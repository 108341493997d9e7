"""Mongo persistence of the register: one document per organisation and per professional.

Each write stores the new state and its changelog event (outbox) in one atomic update.
Dates are ISO strings; the store's ``_version`` is the entry's version on the changelog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from pmm_contracts.events.register import Availability, Commitment
from pmm_contracts.vocabulary import LifeDomain, OrganisationKind, Role
from pmm_register.adapters.search_index import SearchIndex
from pmm_register.domain.model import DuplicateEmail, Organisation, Professional
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import AggregateStore, Pending


def organisation_from(doc: Document) -> Organisation:
    return Organisation(
        code=doc["_id"],
        name=doc["name"],
        kind=OrganisationKind(doc["kind"]),
        region=doc.get("region"),
        joined_on=_date(doc.get("joined_on")),
        left_on=_date(doc.get("left_on")),
        commitment=Commitment.model_validate(doc["commitment"]) if doc.get("commitment") else None,
        history=list(doc.get("history", [])),
        version=doc["_version"],
    )


def organisation_fields(org: Organisation) -> Document:
    state = org.state().model_dump(mode="json", exclude={"version"})
    state.pop("code")
    return {**state, "history": org.history}


def professional_from(doc: Document) -> Professional:
    return Professional(
        id=doc["_id"],
        organisation=doc["organisation"],
        name=doc["name"],
        email=doc["email"],
        roles=tuple(Role(r) for r in doc["roles"]),
        last_verified_on=date.fromisoformat(doc["last_verified_on"]),
        function=doc.get("function"),
        life_domains=tuple(LifeDomain(d) for d in doc.get("life_domains", [])),
        tags=tuple(doc.get("tags", [])),
        phone=doc.get("phone"),
        urgent_phone=doc.get("urgent_phone"),
        availability=Availability.model_validate(doc.get("availability") or {}),
        stale=doc.get("stale", False),
        version=doc["_version"],
    )


def professional_fields(professional: Professional) -> Document:
    state = professional.state().model_dump(mode="json", exclude={"version"})
    state.pop("id")
    return {
        **state,
        "email_key": professional.email.lower(),
        "terms": professional.terms(),
        "available": professional.availability.available,
        "removed": False,
    }


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


class RegisterRepository:
    def __init__(
        self,
        organisations: AggregateStore,
        professionals: AggregateStore,
        index: SearchIndex | None = None,
    ) -> None:
        self.organisations = organisations
        self.professionals = professionals
        # This replica's search index learns its own writes at once (read-your-writes);
        # the other replicas' writes reach it through the changelog.
        self.index = index

    async def create_indexes(self) -> None:
        p: AsyncCollection[Document] = self.professionals.collection
        await p.create_index("email_key", unique=True)
        await p.create_index([("organisation", ASCENDING), ("roles", ASCENDING)])
        await p.create_index([("terms", ASCENDING)])
        await p.create_index([("life_domains", ASCENDING)])
        await p.create_index(
            [("removed", ASCENDING), ("available", DESCENDING), ("name", ASCENDING)]
        )
        await p.create_index([("removed", ASCENDING), ("last_verified_on", ASCENDING)])

    # Organisations ----------------------------------------------------------------------------

    async def organisation(self, code: str) -> Organisation | None:
        doc = await self.organisations.get(code)
        return organisation_from(doc) if doc else None

    async def all_organisations(self) -> list[Organisation]:
        docs = await self.organisations.collection.find({}).sort("_id", ASCENDING).to_list(None)
        return [organisation_from(d) for d in docs]

    async def add_organisation(
        self, org: Organisation, events: Sequence[Pending], audit: Document
    ) -> bool:
        return await self.organisations.create(
            org.code, organisation_fields(org), events, audit=audit
        )

    async def save_organisation(
        self, org: Organisation, expected_version: int, events: Sequence[Pending], audit: Document
    ) -> bool:
        saved = await self.organisations.update(
            org.code,
            expected_version=expected_version,
            set_fields=organisation_fields(org),
            events=events,
            audit=audit,
        )
        return saved is not None

    # Professionals ----------------------------------------------------------------------------

    async def professional(self, professional_id: str) -> Professional | None:
        # By _id alone: FerretDB pushes only a bare _id filter down to its SQLite index.
        doc = await self.professionals.get(professional_id)
        return professional_from(doc) if doc and not doc.get("removed") else None

    async def add_professional(
        self, professional: Professional, events: Sequence[Pending], audit: Document
    ) -> bool:
        try:
            created = await self.professionals.create(
                professional.id, professional_fields(professional), events, audit=audit
            )
        except DuplicateKeyError as exc:
            raise DuplicateEmail(f"{professional.email} is registered already") from exc
        if created and self.index is not None:
            self.index.apply(replace(professional, version=1))
        return created

    async def save_professional(
        self,
        professional: Professional,
        expected_version: int,
        events: Sequence[Pending],
        audit: Document,
    ) -> bool:
        try:
            saved = await self.professionals.update(
                professional.id,
                expected_version=expected_version,
                set_fields=professional_fields(professional),
                events=events,
                audit=audit,
                extra_condition={"removed": False},
            )
        except DuplicateKeyError as exc:
            raise DuplicateEmail(f"{professional.email} is registered already") from exc
        if saved is not None and self.index is not None:
            self.index.apply(replace(professional, version=expected_version + 1))
        return saved is not None

    async def remove_professional(
        self, professional: Professional, events: Sequence[Pending], audit: Document
    ) -> bool:
        """Erase the contact data and keep only a removed marker (purged later)."""
        saved = await self.professionals.update(
            professional.id,
            expected_version=professional.version,
            set_fields={
                "removed": True,
                "name": None,
                "email": None,
                "phone": None,
                "urgent_phone": None,
                "function": None,
                "terms": [],
                "tags": [],
                "email_key": f"removed:{professional.id}",
            },
            events=events,
            audit=audit,
        )
        if saved is not None and self.index is not None:
            self.index.remove(professional.id, professional.version + 1)
        return saved is not None

    async def search(self, query: Document, *, skip: int, limit: int) -> tuple[int, list[Any]]:
        coll = self.professionals.collection
        full = {**query, "removed": False}
        total = await coll.count_documents(full)
        docs = (
            await coll.find(full)
            .sort([("available", DESCENDING), ("name", ASCENDING), ("_id", ASCENDING)])
            .skip(skip)
            .limit(limit)
            .to_list(None)
        )
        return total, [professional_from(d) for d in docs]

    async def due_for_verification(self, verified_before: date, limit: int) -> list[Professional]:
        docs = (
            await self.professionals.collection.find(
                {
                    "removed": False,
                    "stale": False,
                    "last_verified_on": {"$lte": verified_before.isoformat()},
                }
            )
            .limit(limit)
            .to_list(None)
        )
        return [professional_from(d) for d in docs]
