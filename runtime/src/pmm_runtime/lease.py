"""A lease in the store: one holder at a time for a periodic job run by several replicas.

Deadline scans, reminders, retention purges and the yearly figures run in every replica of
a service (``Platform.periodic``); with two or more replicas each round should run once,
not once per replica. A ``Lease`` is one document per job, ``{_id: job, holder,
expires_at, term}``: a replica runs the round only when it holds the lease, and holding it
again renews it. When the holder stops (``release``) the next replica takes over at its
next round; when it crashes, another takes over once ``expires_at`` has passed.

Only what FerretDB 1.x supports: an ``_id`` lookup with a single-document atomic update
(``find_one_and_update`` through ``pmm_runtime.writes``, serialized per document on
FerretDB) and an insert on the unique ``_id``. No upsert with ``$or`` and
no TTL index: an expired lease is taken over, never deleted.

The expiry is compared with the acquiring replica's clock, so the time to live must be
much longer than the clock skew between replicas (NTP keeps it below a second; the
default time to live is minutes). A lease is not a lock for correctness: the jobs stay
idempotent, the lease only stops N replicas doing the same work N times.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from pmm_runtime.mongo import Document
from pmm_runtime.writes import Writes

LEASE_COLLECTION = "leases"
"""The collection of a service's leases, in the service's own database."""

Clock = Callable[[], datetime]


def instance_id() -> str:
    """Who holds a lease: host name (the pod name on Kubernetes), process id, a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Held:
    """The lease as this holder got it: ``term`` grows by one at every change of holder."""

    job: str
    holder: str
    expires_at: datetime
    term: int


class Lease:
    """The lease of one job for one holder (one process)."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        job: str,
        *,
        holder: str,
        ttl_s: float,
        clock: Clock = _utc_now,
        writes: Writes | None = None,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("a lease needs a positive time to live")
        self.collection = collection
        self.job = job
        self.holder = holder
        self.ttl = timedelta(seconds=ttl_s)
        self._clock = clock
        self.writes = writes or Writes(collection.database, holder=holder)

    async def acquire(self) -> Held | None:
        """Take the lease, or renew it when this holder has it; ``None`` when another
        holder has a lease that has not expired."""
        now = self._clock()
        expires_at = now + self.ttl
        # Renewal by the holder, or a takeover of an expired lease: one atomic update of
        # the one document, found by its _id.
        renewed = await self.writes.find_one_and_update(
            self.collection,
            {"_id": self.job, "holder": self.holder},
            {"$set": {"expires_at": expires_at, "renewed_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if renewed is not None:
            return self._held(renewed)
        taken = await self.writes.find_one_and_update(
            self.collection,
            {"_id": self.job, "expires_at": {"$lte": now}},
            {
                "$set": {"holder": self.holder, "expires_at": expires_at, "renewed_at": now},
                "$inc": {"term": 1},
            },
            return_document=ReturnDocument.AFTER,
        )
        if taken is not None:
            return self._held(taken)
        try:
            await self.collection.insert_one(
                {
                    "_id": self.job,
                    "holder": self.holder,
                    "expires_at": expires_at,
                    "renewed_at": now,
                    "term": 1,
                }
            )
        except DuplicateKeyError:
            return None  # another holder's lease, still valid
        return Held(self.job, self.holder, expires_at, 1)

    async def release(self) -> bool:
        """Give the lease up (at shutdown), so another replica takes over at its next round
        instead of after the expiry; ``False`` when this holder did not hold it."""
        released = await self.writes.find_one_and_update(
            self.collection,
            {"_id": self.job, "holder": self.holder},
            {"$set": {"expires_at": self._clock()}},
            return_document=ReturnDocument.BEFORE,
        )
        return released is not None

    async def current(self) -> Held | None:
        """Who holds the lease now (an expired lease is reported as it was left)."""
        document = await self.collection.find_one({"_id": self.job})
        return None if document is None else self._held(document)

    def _held(self, document: Document) -> Held:
        expires_at: datetime = document["expires_at"]
        if expires_at.tzinfo is None:  # a client without tz_aware
            expires_at = expires_at.replace(tzinfo=UTC)
        return Held(self.job, str(document["holder"]), expires_at, int(document["term"]))
