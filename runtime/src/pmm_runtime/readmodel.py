"""Follow the register's compacted changelogs into a service's own database.

Every service that needs to know organisations or professionals (who is a regievoerder,
which executives sit in the LET, which organisation gets a signal) keeps this read model
instead of reading the register's database. It can be rebuilt from offset 0 at any time:
each message is the full current state, a tombstone removes the entry (and with it the
professional's contact data), and an older version never overwrites a newer one.

Who holds a role in an organisation is answered from a small role index, one document per
(organisation, role): ``{_id: "<organisation>/<role>", professionals: {<id>: <version>}}``,
each professional listed with the version of the state that listed it. FerretDB 1.24
decodes every document of a collection for any filter but a bare ``_id`` (decision 0008),
so a query by role would cost what every professional the service knows costs; the index
is read by ``_id``, then each professional it lists. The index may list a professional
that no longer has the role (it costs a read: the professional's current document
decides), but never misses one whose current state has it:

- a state's memberships are listed *before* the state is written, and ones it left are
  unlisted only *after*: a crash in between leaves an extra entry, never a missing one;
- an entry is unlisted only while its version is older than the state (or, for a
  tombstone, not newer than the document) that left it: a newer state that has the role
  again lists itself with its own version first, so no unlisting of an older state's
  can take it out, whatever the order in which two consumers of one key (a rebalance)
  interleave;
- professionals stored before the index existed are listed once per database, at start-up
  (a scan, marked done in ``migrations``, as the services mark their one-time migrations).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import unquote

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from pmm_contracts.envelope import CloudEvent
from pmm_contracts.events.register import OrganisationState, ProfessionalState
from pmm_contracts.topics import REGISTER_ORGANISATIONS, REGISTER_PROFESSIONALS
from pmm_runtime import migrations
from pmm_runtime.mongo import Document
from pmm_runtime.platform import Platform
from pmm_runtime.writes import Writes

BUILD_CHUNK = 1_000
"""Professionals listed per update when the role index is built from the stored ones."""

MEMBERSHIP = {"version": 1, "organisation": 1, "roles": 1}
"""What the role index needs of a stored professional."""


class RegisterReadModel:
    """Organisations and professionals as last published by the register."""

    def __init__(self, platform: Platform, *, prefix: str = "register_") -> None:
        self.organisations: AsyncCollection[Document] = platform.db[prefix + "organisations"]
        self.professionals: AsyncCollection[Document] = platform.db[prefix + "professionals"]
        self.roles: AsyncCollection[Document] = platform.db[prefix + "roles"]
        self.migrations: AsyncCollection[Document] = platform.db[migrations.MIGRATIONS]
        self.roles_built = prefix + "roles"
        """The marker (in ``migrations``) of the role index's build from the stored ones."""
        self.writes = platform.writes
        self._built = False
        self._building = asyncio.Lock()
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
        # On MongoDB a query by role could use it; the role index answers on both stores.
        await self.professionals.create_index([("organisation", ASCENDING), ("roles", ASCENDING)])
        await self._role_index_ready()

    async def _on_organisation(self, event: CloudEvent[OrganisationState]) -> None:
        data = event.data
        stored = await self.organisations.find_one({"_id": data.code}, {"version": 1})
        await _upsert_newer(
            self.writes, self.organisations, data.code, data.model_dump(mode="json"), stored
        )

    async def _on_professional(self, event: CloudEvent[ProfessionalState]) -> None:
        data = event.data
        state = data.model_dump(mode="json")
        stored = await self.professionals.find_one({"_id": data.id}, MEMBERSHIP)
        if _version(stored) > data.version:
            return  # an older state: it will never be the current one
        memberships = _memberships(state)
        if _version(stored) == data.version:
            # A redelivery: it was listed before it was written. List what is missing all
            # the same (one stored by a version without the index): a read per role, a
            # write only for a missing entry.
            await self._list(data.id, memberships, data.version, only_missing=True)
            return
        await self._list(data.id, memberships, data.version)
        if await _upsert_newer(self.writes, self.professionals, data.id, state, stored):
            # Unlist what the state it replaced had (as read above; one written meanwhile
            # by another consumer may leave an extra entry, which costs only a read).
            await self._unlist(data.id, _memberships(stored) - memberships, data.version - 1)

    async def _remove_organisation(self, key: str) -> None:
        await self.organisations.delete_one({"_id": key})

    async def _remove_professional(self, key: str) -> None:
        stored = await self.professionals.find_one({"_id": key}, MEMBERSHIP)
        if stored is None:
            return  # a redelivery, or never known
        await self.professionals.delete_one({"_id": key})
        await self._unlist(key, _memberships(stored), _version(stored))

    # The role index ------------------------------------------------------------------------

    async def _list(
        self, professional_id: str, keys: set[str], version: int, *, only_missing: bool = False
    ) -> None:
        """List the professional under each key with at least ``version`` (idempotent)."""
        path = _path(professional_id)
        for key in sorted(keys):
            if only_missing:
                index = await self.roles.find_one({"_id": key}, {path: 1})
                if _listed(index).get(professional_id, 0) >= version:
                    continue
            await self.writes.update_one(
                self.roles, {"_id": key}, {"$max": {path: version}}, upsert=True
            )

    async def _unlist(self, professional_id: str, keys: set[str], up_to: int) -> None:
        """Take the professional out of each key where a version up to ``up_to`` listed it
        (a newer state that lists it again keeps its entry)."""
        path = _path(professional_id)
        for key in sorted(keys):
            await self.writes.update_one(
                self.roles, {"_id": key, path: {"$lte": up_to}}, {"$unset": {path: ""}}
            )

    async def _role_index_ready(self) -> None:
        """Build the role index from the stored professionals, once per database
        (``pmm_runtime.migrations``, marker ``<prefix>roles``). At start-up, before
        consuming; a model whose platform is not started (a tool, a test) builds it at its
        first query instead."""
        if self._built:
            return
        async with self._building:
            if not self._built:
                await migrations.once(
                    self.migrations, self.writes, self.roles_built, self._build_role_index
                )
                self._built = True

    async def _build_role_index(self) -> dict[str, int]:
        """List every stored professional (one scan). Listing is idempotent, so a start that
        stops half-way builds again, and two processes may build at once; a professional
        changed meanwhile by a consumer ends up listed as its state says (an extra entry at
        most, from the older state read here). Delete the marker to build again (e.g. after
        a previous version kept consuming next to this one: it wrote professionals without
        listing them)."""
        fields: dict[str, dict[str, int]] = {}
        count = 0
        async for person in self.professionals.find({}, MEMBERSHIP):
            count += 1
            for key in _memberships(person):
                fields.setdefault(key, {})[_path(str(person["_id"]))] = _version(person)
        for key, listed in fields.items():
            items = list(listed.items())
            for start in range(0, len(items), BUILD_CHUNK):
                await self.writes.update_one(
                    self.roles,
                    {"_id": key},
                    {"$max": dict(items[start : start + BUILD_CHUNK])},
                    upsert=True,
                )
        return {"professionals": count}

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

    async def with_role(self, role: str, organisation: str) -> list[Document]:
        """The professionals of ``organisation`` whose current state has ``role``, by
        ``_id``: the role index's document of the pair, then each professional it lists,
        all by bare ``_id`` (what it costs grows with the answer, not with the register).
        A listed professional counts only if its document still has both."""
        return [person async for person in self.each_with_role(role, organisation)]

    async def each_with_role(self, role: str, organisation: str) -> AsyncIterator[Document]:
        """``with_role`` one professional at a time, by ``_id``: a caller that needs only
        the first few (the Loket's consultee) reads only those, however many the
        organisation has."""
        await self._role_index_ready()
        index = await self.roles.find_one({"_id": _role_key(organisation, role)})
        for professional_id in sorted(_listed(index)):
            person = await self.professionals.find_one({"_id": professional_id})
            if (
                person is not None
                and person.get("organisation") == organisation
                and role in (person.get("roles") or ())
            ):
                yield person


def _role_key(organisation: str, role: str) -> str:
    return f"{organisation}/{role}"


def _memberships(professional: Document | None) -> set[str]:
    """The role index keys of a professional's state (none for no state)."""
    if professional is None or not professional.get("organisation"):
        return set()
    organisation = str(professional["organisation"])
    return {_role_key(organisation, str(role)) for role in professional.get("roles") or ()}


def _version(stored: Document | None) -> int:
    return 0 if stored is None else int(stored.get("version", 0))


def _path(professional_id: str) -> str:
    """The field of a professional in an index document: ``%``, ``.`` and ``$`` of its id
    percent-encoded (a dot would make a path, a leading ``$`` an operator)."""
    encoded = professional_id.replace("%", "%25").replace(".", "%2E").replace("$", "%24")
    return f"professionals.{encoded}"


def _listed(index: Document | None) -> dict[str, int]:
    """The professionals an index document lists, by id, with the version that listed them."""
    listed = (index or {}).get("professionals") or {}
    return {unquote(field): int(version) for field, version in listed.items()}


async def _upsert_newer(
    writes: Writes,
    collection: AsyncCollection[Document],
    key: str,
    state: Document,
    stored: Document | None,
) -> bool:
    """Write ``state`` unless ``stored`` (the caller's read of ``key`` by bare ``_id``, with
    at least its version) has a newer or equal version; whether it was written.

    The common cases by bare ``_id`` (FerretDB evaluates any other filter by decoding every
    document): the lookup, and the insert of a new key. The replace is conditional on the
    older version through ``Writes`` (serialized per document on FerretDB), so two
    consumers of one key during a rebalance cannot put an older state over a newer one.
    """
    if _version(stored) >= int(state["version"]):
        return False  # a redelivery or an older state changes nothing
    if stored is None:
        with contextlib.suppress(DuplicateKeyError):
            await collection.insert_one({"_id": key, **state})
            return True
    return await writes.replace_one(
        collection, {"_id": key, "version": {"$lt": int(state["version"])}}, {"_id": key, **state}
    )
