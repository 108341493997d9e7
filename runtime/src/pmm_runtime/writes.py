"""Conditional single-document writes, cheap on FerretDB 1.24 and atomic on both stores.

Every write of a document that more than one writer may change (an aggregate with its
outbox, the relay clearing that outbox, the pending announcements, a budget, a counter,
figures, leases) goes through ``Writes``. Two strategies, chosen once per process
(``PMM_STORE_WRITE_STRATEGY``, default ``auto``: ``serialized`` when the server reports
itself as FerretDB in ``buildInfo``, else ``conditional``; decision 0008):

``conditional`` (MongoDB)
    The condition stays in the filter of one ``findAndModify``/``update``: the server
    applies it atomically, its indexes make it cheap, any number of processes may write.

``serialized`` (FerretDB 1.24 on SQLite)
    FerretDB pushes only a *bare* ``_id`` filter down to SQLite; any other field in the
    filter (``{"_id": id, "_version": 3}``) makes it decode every document of the
    collection (1.5 s at 10,000 documents), and it applies an update as read-modify-write
    without a lock, so two connections can lose an update (decision 0005). So the write
    is serialized per document instead: an ``asyncio.Lock`` per document within the
    process, and across processes a lock document inserted by bare ``_id`` in the small
    ``_write_locks`` collection (the unique ``_id`` makes the insert atomic: a duplicate
    key means another process holds it). Holding both, the document is read by bare
    ``_id``, the condition is checked here (``matches``), and the update is sent with the
    bare ``_id`` filter only. A lock older than ``lock_ttl_s`` (its holder crashed) is
    taken over. The lock collection holds only the locks held at this moment, so its
    own scans stay small.

The serialized strategy is correct only if *every* writer of those documents uses it;
inserts need no lock (the unique ``_id`` decides).

Inserts are group-committed (``GroupInsert``, decision 0010): the inserts of one collection
that concurrent coroutines of this process ask for while the store is busy go out as one
unordered ``insert_many``, and each caller learns its own document's outcome (a duplicate
key is that caller's ``DuplicateKeyError`` alone). On FerretDB one ``insert_many`` of 50
documents costs about what two ``insert_one`` do; a consumer's batch (keys handled
concurrently) and a relay's page therefore pay for their inserts, lock documents included,
about once. The release of locks is grouped the same way (one delete of the lock
documents released meanwhile), and so are the serialized updates by bare ``_id``
(``GroupUpdate``, decision 0014): the updates of one collection that concurrent holders of
different documents' locks send meanwhile go out as one ``update`` command of several
statements, each caller learning whether its own document matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pymongo import DeleteOne, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from pmm_runtime.errors import Unavailable
from pmm_runtime.mongo import Document

LOCK_COLLECTION = "_write_locks"
"""The locks of the serialized strategy, in the service's own database."""


class WriteStrategy(StrEnum):
    AUTO = "auto"
    CONDITIONAL = "conditional"
    SERIALIZED = "serialized"


class GroupedUpdateFailed(Unavailable):
    """The store refused one statement of a grouped update, and with it the outcome of the
    whole call is unknown (``GroupUpdate``): retried like an outage; the retries go one
    statement per call, so only the faulty update keeps failing, with its own error."""


class LockTimeout(Unavailable):
    """Another writer held the document's lock for longer than the wait allows: 503 at the
    HTTP edge, retried by a consumer (a lock is never held that long but by a stopped
    holder, and the wait outlasts the takeover of its lock)."""


T = TypeVar("T")


def _values(document: Any, path: str) -> list[Any]:
    """The values at a dotted ``path`` (an array on the way contributes each element)."""
    current: list[Any] = [document]
    for part in path.split("."):
        found: list[Any] = []
        for value in current:
            if isinstance(value, Mapping):
                if part in value:
                    found.append(value[part])
            elif isinstance(value, list):
                if part.isdigit() and int(part) < len(value):
                    found.append(value[int(part)])
                else:
                    found.extend(v[part] for v in value if isinstance(v, Mapping) and part in v)
        current = found
    return current


def _candidates(values: list[Any]) -> list[Any]:
    """What a query compares with: each value, and each element of an array value."""
    out: list[Any] = []
    for value in values:
        out.append(value)
        if isinstance(value, list):
            out.extend(value)
    return out


def _compare(op: str, have: Any, want: Any) -> bool:
    try:
        if op == "$gt":
            return bool(have > want)
        if op == "$gte":
            return bool(have >= want)
        if op == "$lt":
            return bool(have < want)
        if op == "$lte":
            return bool(have <= want)
    except TypeError:
        return False  # MongoDB compares only values of one type
    raise NotImplementedError(op)


def _matches_operators(values: list[Any], operators: Mapping[str, Any]) -> bool:
    candidates = _candidates(values)
    for op, want in operators.items():
        if op == "$eq":
            ok = want in candidates
        elif op == "$ne":
            ok = want not in candidates
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            ok = any(_compare(op, have, want) for have in candidates)
        elif op == "$in":
            ok = any(w in candidates for w in want) or (None in want and not values)
        elif op == "$nin":
            ok = not any(w in candidates for w in want)
        elif op == "$exists":
            ok = bool(values) == bool(want)
        elif op == "$size":
            ok = any(isinstance(v, list) and len(v) == want for v in values)
        else:
            raise NotImplementedError(f"condition operator {op} in a serialized write")
        if not ok:
            return False
    return True


def matches(document: Mapping[str, Any], condition: Mapping[str, Any]) -> bool:
    """Whether ``document`` satisfies a MongoDB ``condition`` (the subset the platform's
    conditional writes use: equality, ``$eq $ne $gt $gte $lt $lte $in $nin $exists
    $size`` on dotted paths, array fields matching by element; anything else raises
    ``NotImplementedError`` rather than guess)."""
    for path, want in condition.items():
        if path.startswith("$"):
            raise NotImplementedError(f"top-level {path} in a serialized write")
        values = _values(document, path)
        if isinstance(want, Mapping) and want and all(k.startswith("$") for k in want):
            if not _matches_operators(values, want):
                return False
        elif want is None:
            if any(v is not None for v in _candidates(values)):
                return False
        elif want not in _candidates(values):
            return False
    return True


class _Group(Generic[T]):
    """Group commit within one process: the pattern ``GroupInsert``, ``GroupRelease`` and
    ``GroupUpdate`` share.

    A caller queues its entry and takes the queue's turn (an ``asyncio.Lock``); whoever
    holds the turn first yields once to the event loop, so that the coroutines ready to run
    queue theirs too, then sends everything queued (at most ``limit``) as one call
    (``_send``) and settles each caller's future: its result (what ``_send`` names for that
    entry, else None), the failure ``_send`` names for that entry alone, or the error of
    the whole call (its outcome unknown, as for a single write). A caller whose entry went
    out with an earlier holder's call finds its future settled when its turn comes. Alone,
    a caller pays one yield; under load, one round trip serves many. A cancelled caller's
    entry that was not sent yet is taken out of the queue; entries of one caller stay in
    its order (it awaits each).
    """

    def __init__(self, *, limit: int) -> None:
        self.limit = limit
        self._queue: list[tuple[T, asyncio.Future[Any]]] = []
        self._turn = asyncio.Lock()

    async def _submit(self, item: T) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        entry = (item, future)
        self._queue.append(entry)
        try:
            async with self._turn:
                if not future.done():
                    await asyncio.sleep(0)  # the coroutines ready now queue theirs too
                    batch, self._queue = self._queue[: self.limit], self._queue[self.limit :]
                    await self._settle(batch)
        except asyncio.CancelledError:
            if any(queued is entry for queued in self._queue):  # not sent: it never will be
                self._queue = [queued for queued in self._queue if queued is not entry]
            raise
        return await future  # this entry's own outcome

    async def _settle(self, batch: list[tuple[T, asyncio.Future[Any]]]) -> None:
        try:
            failed = await self._send([item for item, _ in batch])
        except BaseException as exc:  # connection lost, cancelled: nobody knows what landed
            error = exc if isinstance(exc, Exception) else Unavailable("write cancelled")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        for index, (_, future) in enumerate(batch):
            if future.done():
                continue
            outcome = failed.get(index)
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def _send(self, items: list[T]) -> Mapping[int, object]:
        """Send ``items`` as one call; by index, the failure of each entry that failed
        alone, or an entry's result when it has one. Raises when the outcome of the whole
        call is unknown."""
        raise NotImplementedError


class GroupInsert(_Group[Document]):
    """Group commit of one collection's inserts: one unordered ``insert_many`` for the
    documents queued meanwhile; a caller's own failure is its ``DuplicateKeyError`` or
    ``WriteError`` from the call's ``writeErrors``."""

    def __init__(self, collection: AsyncCollection[Document], *, limit: int = 64) -> None:
        # limit: below 100, the connections FerretDB 1.24 keeps per database (its pool);
        # an insert_many is one statement per document there, in one transaction
        super().__init__(limit=limit)
        self.collection = collection

    async def insert(self, document: Mapping[str, Any]) -> None:
        await self._submit(dict(document))

    async def _send(self, items: list[Document]) -> Mapping[int, object]:
        try:
            if len(items) == 1:
                await self.collection.insert_one(items[0])
            else:
                await self.collection.insert_many(items, ordered=False)
        except DuplicateKeyError as exc:  # insert_one
            return {0: exc}
        except BulkWriteError as exc:
            details = exc.details or {}
            failed: dict[int, BaseException] = {}
            for error in details.get("writeErrors") or []:
                index, code = int(error.get("index", -1)), error.get("code")
                message = str(error.get("errmsg", "write error"))
                failed[index] = (
                    DuplicateKeyError(message, code, error)
                    if code in (11000, 11001, 12582)
                    else WriteError(message, code, error)
                )
            if (details.get("writeConcernErrors") or []) or not failed:
                raise  # the outcome of the whole call is unknown
            return failed
        return {}


class GroupRelease(_Group[tuple[str, bool]]):
    """Group the deletes of this holder's lock documents: one ``delete`` command of one
    statement per lock released meanwhile.

    A lock this process took a moment ago (``by_id``: held for less than half of
    ``lock_ttl_s``) cannot have been taken over (only a lock older than ``lock_ttl_s`` is),
    so its statement names the bare ``_id``, which FerretDB answers through its ``_id``
    index; a lock held longer is deleted only while it still names this holder, a filter
    FerretDB evaluates by reading the lock collection (held locks only: small)."""

    def __init__(self, locks: AsyncCollection[Document], holder: str, *, limit: int = 64) -> None:
        super().__init__(limit=limit)
        self.locks = locks
        self.holder = holder

    async def release(self, name: str, *, by_id: bool = False) -> None:
        await self._submit((name, by_id))

    async def _send(self, items: list[tuple[str, bool]]) -> Mapping[int, object]:
        statements = [
            DeleteOne({"_id": name} if by_id else {"_id": name, "holder": self.holder})
            for name, by_id in dict.fromkeys(items)
        ]
        await self.locks.bulk_write(statements, ordered=False)
        return {}


@dataclass(frozen=True)
class _Update:
    key: Any
    update: Mapping[str, Any]
    upsert: bool


class GroupUpdate(_Group[_Update]):
    """Group commit of one collection's serialized updates (decision 0014): one ``update``
    command of one statement per document, each by its bare ``_id``, for the updates
    queued meanwhile. Every caller holds its own document's lock, so no two statements of
    a call name one document, and nothing else changes those documents until the callers
    learn whether their document matched (or was inserted).

    The store answers only the call's total of matched documents. When it is short of the
    statements that did not upsert, the documents of those statements are looked up (by
    ``_id``, under their callers' locks still): a document that exists now is one that
    matched. The relay's clearings and the upserts of a consumer's batch seldom miss, so
    that costs nothing in the usual case.

    A statement the store refuses (a write error: a bug of the update, never a rule) makes
    the whole call's outcome unknown: FerretDB 1.24 stops at the first error whatever
    ``ordered`` says and names it by a wrong index. Every caller of that call gets
    ``GroupedUpdateFailed`` (an outage: retried, as after a lost connection; each update
    here may be sent again), and the next ``ALONE_AFTER_FAILURE`` updates of the
    collection go one statement per call, so the faulty one fails alone, with its own
    error."""

    ALONE_AFTER_FAILURE = 256

    def __init__(self, collection: AsyncCollection[Document], *, limit: int = 64) -> None:
        # limit: FerretDB 1.24 mishandles an update command of 100 statements or more
        super().__init__(limit=limit)
        self.collection = collection
        self._alone = 0

    async def update(self, key: Any, update: Mapping[str, Any], *, upsert: bool) -> bool:
        item = _Update(key, dict(update), upsert)
        if self._alone > 0:
            self._alone -= 1
            return await self._one(item)
        return bool(await self._submit(item))

    async def _one(self, item: _Update) -> bool:
        done = await self.collection.update_one({"_id": item.key}, item.update, upsert=item.upsert)
        return done.matched_count > 0 or done.upserted_id is not None

    async def _send(self, items: list[_Update]) -> Mapping[int, object]:
        if len(items) == 1:
            return {0: await self._one(items[0])}
        # The command itself, not bulk_write: PyMongo's merging of the replies needs an
        # nModified that FerretDB 1.24 leaves out of a reply with write errors.
        reply = await self.collection.database.command(
            {
                "update": self.collection.name,
                "updates": [
                    {"q": {"_id": i.key}, "u": dict(i.update), "upsert": i.upsert} for i in items
                ],
                "ordered": True,
            }
        )
        if reply.get("writeErrors") or reply.get("writeConcernError"):
            self._alone = self.ALONE_AFTER_FAILURE
            first = (reply.get("writeErrors") or [reply.get("writeConcernError")])[0] or {}
            raise GroupedUpdateFailed(
                f"a grouped update of {self.collection.name} failed "
                f"(code {first.get('code')}); its {len(items)} updates are retried one by one"
            )
        upserted = {int(u["index"]) for u in reply.get("upserted") or []}
        matched = int(reply.get("n", 0)) - len(upserted)  # n counts the upserted too
        rest = [i for i in range(len(items)) if i not in upserted]
        outcomes: dict[int, object] = dict.fromkeys(upserted, True)
        if matched >= len(rest):
            return {**outcomes, **dict.fromkeys(rest, True)}
        for i in rest:  # by bare _id each: FerretDB reads the collection for an $in
            found = await self.collection.find_one({"_id": items[i].key}, {"_id": 1})
            outcomes[i] = found is not None
        return outcomes


@dataclass
class _Local:
    """One document's lock in this process: the ``asyncio.Lock`` its coroutines queue on,
    how many of them are in ``locked`` (holding or waiting), and whether this process
    holds the document's lock document (since ``taken``, ``time.monotonic()``)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    held: bool = False
    taken: float = 0.0
    document: Document | None = None
    """The document as the last ``Held`` of this process read or wrote it, while the lock
    document stayed held here since (nobody else can have changed it); None: unknown."""

    def remember(self, document: Document | None) -> None:
        """Keep a copy for the next block of this process, if one waits already (else the
        lock is released at the end of this block, and the copy would go unread)."""
        waiting = self.users > 1 and document is not None
        self.document = copy.deepcopy(document) if waiting else None

    def forget(self) -> None:
        self.document = None


class Writes:
    """The conditional writes of one process (``Platform.writes``)."""

    def __init__(
        self,
        database: AsyncDatabase[Document],
        *,
        holder: str,
        strategy: WriteStrategy | str = WriteStrategy.AUTO,
        lock_ttl_s: float = 30.0,
        lock_wait_s: float = 45.0,  # longer than lock_ttl_s: a dead holder's lock is taken over
    ) -> None:
        self.database = database
        self.locks: AsyncCollection[Document] = database[LOCK_COLLECTION]
        self.holder = holder
        self._strategy = WriteStrategy(strategy)
        self._lock_ttl = timedelta(seconds=lock_ttl_s)
        self._lock_wait_s = lock_wait_s
        self._local: dict[str, _Local] = {}
        self._detect = asyncio.Lock()
        self._inserts: dict[tuple[str, str], GroupInsert] = {}
        self._updates: dict[tuple[str, str], GroupUpdate] = {}
        self._releases = GroupRelease(self.locks, holder)
        self.incidents = 0
        """How many writes of this process failed with an error whose outcome is unknown
        (the store went away mid-write, a lock stayed held): a write before it may be saved
        without what should follow it (its announcement), so sweeps look again
        (``SweepSchedule``)."""

    async def strategy(self) -> WriteStrategy:
        """The strategy of this process; ``auto`` is decided at the first call."""
        if self._strategy is WriteStrategy.AUTO:
            async with self._detect:
                if self._strategy is WriteStrategy.AUTO:
                    info = await self.database.client.admin.command("buildInfo")
                    ferretdb = "ferretdbVersion" in info
                    self._strategy = (
                        WriteStrategy.SERIALIZED if ferretdb else WriteStrategy.CONDITIONAL
                    )
        return self._strategy

    # The writes ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _watched(self) -> Iterator[None]:
        """Count a write that failed other than by its own unique key (``incidents``)."""
        try:
            yield
        except DuplicateKeyError:
            raise
        except Exception:
            self.incidents += 1
            raise

    def _group(self, collection: AsyncCollection[Document]) -> GroupInsert:
        return _per_collection(self._inserts, collection, GroupInsert)

    def _grouped_update(self, collection: AsyncCollection[Document]) -> GroupUpdate:
        return _per_collection(self._updates, collection, GroupUpdate)

    async def insert_one(
        self, collection: AsyncCollection[Document], document: Mapping[str, Any]
    ) -> None:
        """Insert a new document (no lock: the unique ``_id`` decides; a duplicate raises
        ``DuplicateKeyError``); group-committed with the inserts of the same collection
        that other coroutines ask for meanwhile (``GroupInsert``)."""
        with self._watched():
            await self._group(collection).insert(document)

    async def find_one_and_update(
        self,
        collection: AsyncCollection[Document],
        condition: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
        return_document: bool = ReturnDocument.AFTER,
    ) -> Document | None:
        """``findAndModify`` of the one document ``condition["_id"]`` names; the document
        (after or before, as asked), or None when it does not match."""
        with self._watched():
            if await self.strategy() is WriteStrategy.CONDITIONAL:
                result: Document | None = await collection.find_one_and_update(
                    dict(condition), dict(update), upsert=upsert, return_document=return_document
                )
                return result
            key, rest = _split(condition)
            async with self.locked(collection.name, key):
                if not await self._still_matches(collection, key, rest, upsert=upsert):
                    return None
                found: Document | None = await collection.find_one_and_update(
                    {"_id": key}, dict(update), upsert=upsert, return_document=return_document
                )
                return found

    async def update_one(
        self,
        collection: AsyncCollection[Document],
        condition: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
    ) -> bool:
        """``update`` of the one document ``condition["_id"]`` names; whether it matched
        (or was inserted)."""
        with self._watched():
            if await self.strategy() is WriteStrategy.CONDITIONAL:
                result = await collection.update_one(dict(condition), dict(update), upsert=upsert)
                return result.matched_count > 0 or result.upserted_id is not None
            key, rest = _split(condition)
            async with self.locked(collection.name, key):
                if not await self._still_matches(collection, key, rest, upsert=upsert):
                    return False
                return await self._grouped_update(collection).update(key, update, upsert=upsert)

    async def replace_one(
        self,
        collection: AsyncCollection[Document],
        condition: Mapping[str, Any],
        replacement: Mapping[str, Any],
    ) -> bool:
        """Replace the one document ``condition["_id"]`` names if it matches."""
        with self._watched():
            if await self.strategy() is WriteStrategy.CONDITIONAL:
                result = await collection.replace_one(dict(condition), dict(replacement))
                return result.matched_count > 0
            key, rest = _split(condition)
            async with self.locked(collection.name, key):
                if not await self._still_matches(collection, key, rest, upsert=False):
                    return False
                done = await collection.replace_one({"_id": key}, dict(replacement))
                return done.matched_count > 0

    async def delete_one(
        self, collection: AsyncCollection[Document], condition: Mapping[str, Any]
    ) -> bool:
        """Delete the one document ``condition["_id"]`` names if it matches."""
        with self._watched():
            if await self.strategy() is WriteStrategy.CONDITIONAL:
                result = await collection.delete_one(dict(condition))
                return result.deleted_count > 0
            key, rest = _split(condition)
            async with self.locked(collection.name, key):
                if not await self._still_matches(collection, key, rest, upsert=False):
                    return False
                done = await collection.delete_one({"_id": key})
                return done.deleted_count > 0

    async def delete_immutable(self, collection: AsyncCollection[Document], ids: list[Any]) -> int:
        """Delete the documents with these ids, in one round trip and without a lock: only
        for documents nobody updates (insert-only announcements), so no write of another
        holder can interleave. One ``delete`` command of one statement per id, each by
        bare ``_id``: FerretDB answers each through its ``_id`` index (an ``$in`` filter
        would decode the whole collection, whatever backlog it holds)."""
        with self._watched():
            if len(ids) == 1:
                result = await collection.delete_one({"_id": ids[0]})
                return result.deleted_count
            done = await collection.bulk_write([DeleteOne({"_id": i}) for i in ids], ordered=False)
            return done.deleted_count

    async def _still_matches(
        self,
        collection: AsyncCollection[Document],
        key: Any,
        rest: Mapping[str, Any],
        *,
        upsert: bool,
    ) -> bool:
        if not rest:
            return True  # a bare _id: the store decides (missing: no match, or an upsert)
        current = await collection.find_one({"_id": key})
        return _decide(collection, current, key, rest, upsert=upsert)

    @contextlib.asynccontextmanager
    async def holding(self, collection: AsyncCollection[Document], key: Any) -> AsyncIterator[Held]:
        """Read the document ``key`` to decide a write of it (read, decide, write).

        On FerretDB the document is read while holding its lock, and the write
        (``Held.find_one_and_update``) is checked against that read here: nobody else can
        change it meanwhile, so the caller's own read and the read under the lock become
        one (decision 0013). Keep the block short; another document may be written in it
        (its lock is then taken inside this one: take such locks in one order only), but
        the held one only through ``Held``. On MongoDB it is a plain read, and the write
        takes its condition to the store as ever.
        """
        serialized = await self.strategy() is WriteStrategy.SERIALIZED
        held = Held(self, collection, key, serialized=serialized)
        if not serialized:
            await held.read()
            yield held
            return
        async with self.locked(collection.name, key, known=True) as local:
            held._local = local
            await held.read()
            yield held

    # The lock ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def locked(
        self, collection: str, key: Any, *, known: bool = False
    ) -> AsyncIterator[_Local]:
        """Hold the write lock of one document: in this process and across processes.

        The lock document is handed over within the process (decision 0014): a holder
        that leaves while another coroutine of this process waits for the same document
        keeps the lock document for it, so a hot document (a budget, a counter, a figures
        bucket) written by many coroutines in turn costs no insert and delete per write.
        A lock document is handed over only while it is younger than a third of
        ``lock_ttl_s``: then it is released, so other processes get their turn and never
        see it as a stopped holder's.

        ``known``: the block reads and writes the document only through a ``Held``, which
        may use the document the last such block left (``holding``). Any other block may
        write it otherwise, so the document is forgotten when it starts."""
        name = f"{collection}/{key}"
        local = self._local.setdefault(name, _Local())
        local.users += 1
        try:
            async with local.lock:
                if not local.held:
                    await self._acquire(name)
                    local.held, local.taken = True, time.monotonic()
                if not known:
                    local.forget()
                try:
                    yield local
                finally:
                    young = time.monotonic() - local.taken < self._lock_ttl.total_seconds() / 3
                    if local.users == 1 or not young:  # nobody here waits, or held long
                        await self._release(local, name)
        finally:
            local.users -= 1
            if local.users == 0:
                self._local.pop(name, None)
                if local.held:  # the waiter it was kept for was cancelled
                    await self._release(local, name)

    async def _release(self, local: _Local, name: str) -> None:
        local.held = False
        local.forget()
        young = time.monotonic() - local.taken < self._lock_ttl.total_seconds() / 2
        with contextlib.suppress(Exception):
            await self._releases.release(name, by_id=young)

    async def _acquire(self, name: str) -> None:
        deadline = time.monotonic() + self._lock_wait_s
        pause = 0.002
        while True:
            now = datetime.now(UTC)
            try:
                await self._group(self.locks).insert(
                    {"_id": name, "holder": self.holder, "at": now}
                )
                return
            except DuplicateKeyError:
                pass
            held = await self.locks.find_one({"_id": name})
            if held is not None and _aware(held["at"]) < now - self._lock_ttl:
                # Its holder stopped while holding it: take it over (only that lock).
                await self.locks.delete_one(
                    {"_id": name, "holder": held["holder"], "at": held["at"]}
                )
                continue
            if time.monotonic() > deadline:
                raise LockTimeout(f"the write lock of {name} stayed held")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)


class Held:
    """A document read to decide its write (``Writes.holding``)."""

    def __init__(
        self, writes: Writes, collection: AsyncCollection[Document], key: Any, *, serialized: bool
    ) -> None:
        self.writes = writes
        self.collection = collection
        self.key = key
        self.serialized = serialized
        """True on FerretDB: the lock is held, so ``document`` stays what the store holds
        until this block writes it (a write that did not match needs no read to learn why)."""
        self.document: Document | None = None
        self._local: _Local | None = None
        """On FerretDB, the document's lock in this process (it may know the document)."""

    async def read(self) -> Document | None:
        """Read the document; on FerretDB none is sent when the lock document stayed held
        in this process since the last block of it read or wrote it (decision 0014)."""
        local = self._local
        if local is not None and local.document is not None:
            self.document = copy.deepcopy(local.document)
            return self.document
        with self.writes._watched():
            self.document = await self.collection.find_one({"_id": self.key})
        if local is not None:
            local.remember(self.document)
        return self.document

    async def find_one_and_update(
        self,
        condition: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
    ) -> Document | None:
        """``Writes.find_one_and_update`` of the held document (the document after it, or
        None when it does not match); on FerretDB checked against the read under the lock
        and sent with the bare ``_id``."""
        key, rest = _split(condition)
        if key != self.key:
            raise ValueError(f"the held document is {self.key!r}, not {key!r}")
        with self.writes._watched():
            if not self.serialized:
                result: Document | None = await self.collection.find_one_and_update(
                    dict(condition),
                    dict(update),
                    upsert=upsert,
                    return_document=ReturnDocument.AFTER,
                )
                return result
            if not _decide(self.collection, self.document, key, rest, upsert=upsert):
                return None
            if self._local is not None:
                self._local.forget()  # until the store says what it holds now
            found: Document | None = await self.collection.find_one_and_update(
                {"_id": key}, dict(update), upsert=upsert, return_document=ReturnDocument.AFTER
            )
            self.document = found
            if self._local is not None:
                self._local.remember(found)
            return found


class SweepSchedule:
    """When a full sweep of a recovery scan is due: at its first round, every
    ``interval_s``, and soon after a write of this process failed (``Writes.incidents``):
    the write before it may be saved without its announcement, and waiting for the next
    interval would leave that work for minutes. A sweep that fails stays due."""

    def __init__(self, writes: Writes | None, interval_s: float) -> None:
        self.writes = writes
        self.interval_s = interval_s
        self._last: float | None = None
        self._incidents_seen = 0

    def due(self) -> bool:
        if self._last is None or time.monotonic() - self._last > self.interval_s:
            return True
        return self.writes is not None and self.writes.incidents != self._incidents_seen

    @contextlib.asynccontextmanager
    async def sweeping(self) -> AsyncIterator[None]:
        """Around one sweep: it counts as done only when it ends without an error, and an
        incident during it makes the next one due."""
        seen = self.writes.incidents if self.writes is not None else 0
        yield
        self._last = time.monotonic()
        self._incidents_seen = seen


def _decide(
    collection: AsyncCollection[Document],
    current: Document | None,
    key: Any,
    rest: Mapping[str, Any],
    *,
    upsert: bool,
) -> bool:
    """Whether a serialized write of ``key`` may go out, given the document read under
    its lock (``current``, None when there is none) and the rest of its condition."""
    if not rest:
        return current is not None or upsert
    if current is None:
        if upsert and any(_is_equality(v) for v in rest.values()):
            # MongoDB would copy these fields into the new document; nobody needs it.
            raise NotImplementedError("an upsert with an equality besides _id")
        return upsert  # operators only ($ne, $lt, ...): the new document is just _id
    if matches(current, rest):
        return True
    if upsert:  # MongoDB would try to insert a second document with this _id
        raise DuplicateKeyError(f"E11000 duplicate key: {collection.name} {key!r}")
    return False


G = TypeVar("G", GroupInsert, GroupUpdate)


def _per_collection(
    groups: dict[tuple[str, str], G],
    collection: AsyncCollection[Document],
    make: Callable[[AsyncCollection[Document]], G],
) -> G:
    """The group of ``collection`` in ``groups``, made at its first use."""
    key = (collection.database.name, collection.name)
    group = groups.get(key)
    if group is None:
        group = groups[key] = make(collection)
    return group


def _split(condition: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    if "_id" not in condition or isinstance(condition["_id"], Mapping):
        raise ValueError("a serialized write names its document by a plain _id")
    return condition["_id"], {k: v for k, v in condition.items() if k != "_id"}


def _is_equality(want: Any) -> bool:
    return not (isinstance(want, Mapping) and want and all(k.startswith("$") for k in want))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
