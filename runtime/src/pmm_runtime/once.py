"""Exactly-once updates of a hot document that does not keep every key it applied.

A budget or a figures bucket is changed by many commands or deltas, each exactly once. The
simple rule (the update's condition says the key is not in the document's list of applied
keys, and pushes it there) makes the document grow with every key it ever saw, and on
FerretDB 1.24 every read and update of it decodes the whole list: a read and update of a
document with 100 keys costs 14 ms, with 2,000 keys 150 ms, against 4 ms for a small one
(decision 0011). ``ApplyOnce`` keeps the document small:

- each applied key has a *marker*, a document of its own found by ``_id`` in a marker
  collection (a budget's ledger entry is one: its ``_id`` is the command id);
- the hot document lists only the keys *in flight* (``_inflight``): applied, their marker
  perhaps not written yet. The update that applies a key pushes its entry there, on
  condition that the key is not there already;
- keys whose markers exist are taken off the list now and then (``compact``), and each
  time the document's ``_epoch`` goes up by one.

A writer reads the document (its epoch and in-flight keys), then looks for the keys'
markers, then updates on condition that the epoch is still the one it read. A key applied
by someone else meanwhile is either still in flight (the condition on the list fails) or
was compacted, which needs its marker written after the writer looked and so changed the
epoch: the update fails, the writer reads again and finds the marker. A crash between the
update and the marker leaves the key in flight for good, with what its entry says, until
the caller writes the marker (``Seen`` returns the in-flight entries).

The writes go through ``Writes`` (bare ``_id`` on FerretDB, the condition in the filter on
MongoDB); markers are read by ``_id`` only, so the cost of a key does not grow with the
number of keys applied.

Markers are never removed, so a key whose marker this process wrote (``mark``) or found
is remembered (the last ``REMEMBERED``): a compaction does not read the markers of the keys
this process applied itself, which with one instance are all of them (decision 0014).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from pmm_runtime.errors import Conflict
from pmm_runtime.mongo import Document
from pmm_runtime.recent import Recent
from pmm_runtime.writes import Held, Writes, matches

INFLIGHT = "_inflight"
"""The entries of the keys applied whose markers may not be written yet; each has ``k``."""
EPOCH = "_epoch"
"""Goes up by one whenever keys are taken off the in-flight list."""
REMEMBERED = 4096
"""How many keys with a marker a process remembers (``ApplyOnce.marked``)."""


@dataclass
class Applied:
    """The update was applied for every key: the document after it."""

    document: Document


@dataclass
class Seen:
    """At least one key was applied before: nothing was changed now. ``inflight`` holds
    the in-flight entries of those keys (their markers may be missing), or ``marked`` the
    first key found with its marker."""

    inflight: list[Document] = field(default_factory=list)
    marked: list[str] = field(default_factory=list)


@dataclass
class Refused:
    """No key was applied before, and the caller's condition does not hold (or there is
    no document and no upsert)."""


Outcome = Applied | Seen | Refused


class ApplyOnce:
    """Exactly-once updates of the documents of ``collection`` (see the module doc)."""

    def __init__(
        self,
        writes: Writes,
        collection: AsyncCollection[Document],
        markers: AsyncCollection[Document],
        *,
        keep: int = 16,
        attempts: int = 20,
    ) -> None:
        self.writes = writes
        self.collection = collection
        self.markers = markers
        self.keep = keep
        self.attempts = attempts
        self._known = Recent(REMEMBERED)
        """Keys whose markers exist (written or found here; a marker is never removed)."""

    async def marked(self, key: str) -> bool:
        """Whether ``key`` has its marker (remembered, else read by ``_id``)."""
        if key in self._known:
            return True
        if await self.markers.find_one({"_id": key}, {"_id": 1}) is None:
            return False
        self._known.add(key)
        return True

    async def mark(self, marker: Mapping[str, Any]) -> bool:
        """Write the marker of an applied key (its ``_id`` is the key; a caller's marker may
        be a whole record, as a budget's ledger entry): False when it was there already
        (the same key applied and marked by an earlier attempt)."""
        try:
            await self.writes.insert_one(self.markers, marker)
        except DuplicateKeyError:
            written = False
        else:
            written = True
        self._known.add(str(marker["_id"]))
        return written

    async def apply(
        self,
        document_id: Any,
        entries: Sequence[Mapping[str, Any]],
        update: Mapping[str, Any],
        *,
        condition: Mapping[str, Any] | None = None,
        upsert: bool = False,
    ) -> Outcome:
        """Apply ``update`` once for the keys of ``entries`` (each entry's ``k``), together:
        all of them or none. The caller writes each key's marker after ``Applied``."""
        keys = [str(entry["k"]) for entry in entries]
        for _ in range(self.attempts):
            async with self.writes.holding(self.collection, document_id) as held:
                outcome = await self._attempt(held, keys, entries, update, condition, upsert)
            if outcome is not None:
                return outcome
        raise Conflict(f"{self.collection.name} {document_id!r} kept changing; try again")

    async def _attempt(
        self,
        held: Held,
        keys: Sequence[str],
        entries: Sequence[Mapping[str, Any]],
        update: Mapping[str, Any],
        condition: Mapping[str, Any] | None,
        upsert: bool,
    ) -> Outcome | None:
        """One read and conditional update; None when the document moved meanwhile (only
        where the read is not under the lock: MongoDB) and must be read again."""
        current = held.document
        if current is None and not upsert:
            return Refused()
        inflight: list[Document] = list((current or {}).get(INFLIGHT) or [])
        found = [entry for entry in inflight if entry.get("k") in keys]
        if found:
            return Seen(inflight=found)
        for key in keys:  # one read by _id each; the first one found is enough
            if await self.marked(key):
                return Seen(marked=[key])
        if len(inflight) > self.keep:
            taken, current = await self._compact(held, inflight)
            if taken and current is None:
                return None  # compacted by someone else meanwhile: read again
        epoch = (current or {}).get(EPOCH)
        full: dict[str, Any] = {
            "_id": held.key,
            EPOCH: _same(epoch),
            f"{INFLIGHT}.k": {"$nin": list(keys)},
            **(condition or {}),
        }
        change = {key: dict(value) for key, value in update.items()}
        change.setdefault("$push", {})[INFLIGHT] = {"$each": [dict(e) for e in entries]}
        try:
            done = await held.find_one_and_update(full, change, upsert=upsert)
        except DuplicateKeyError:
            if upsert:
                return None  # it exists and did not match: read again
            raise
        if done is not None:
            return Applied(done)
        # Why not? Under the lock the read still holds; elsewhere read again.
        after = held.document if held.serialized else await held.read()
        if after is None:
            return None if upsert else Refused()
        moved = after.get(EPOCH) != epoch
        if moved or any(entry.get("k") in keys for entry in after.get(INFLIGHT) or []):
            return None  # compacted or applied meanwhile: read again
        if condition and not matches(after, condition):
            return Refused()
        return None

    async def compact(self, document_id: Any, inflight: Sequence[Mapping[str, Any]]) -> int:
        """Take the in-flight entries whose markers exist off the list (and move the
        epoch); how many were taken off (0 also when the document moved meanwhile)."""
        async with self.writes.holding(self.collection, document_id) as held:
            taken, after = await self._compact(held, inflight)
        return taken if after is not None else 0

    async def _compact(
        self, held: Held, inflight: Sequence[Mapping[str, Any]]
    ) -> tuple[int, Document | None]:
        """``compact`` of the held document: how many entries were taken off, and the
        document after (None when its epoch moved since it was read)."""
        confirmed = [dict(entry) for entry in inflight if await self.marked(str(entry["k"]))]
        if not confirmed:
            return 0, held.document
        after = await held.find_one_and_update(
            {"_id": held.key, EPOCH: _same((held.document or {}).get(EPOCH))},
            {"$pullAll": {INFLIGHT: confirmed}, "$inc": {EPOCH: 1}},
        )
        return len(confirmed), after


def _same(epoch: Any) -> Any:
    """The condition that the epoch is still ``epoch`` (none yet: the field is missing)."""
    return epoch if epoch is not None else {"$exists": False}
