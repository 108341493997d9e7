"""The change loop: the one place that writes an aggregate (docs/decisions/0006).

A use case reads like::

    await changes.apply(cases, case_id, cmd_id, lambda c: c.assign(director), actor=...,
                        action="case.assigned")

and ``apply`` does, by one rule for every service:

1. load the aggregate by ``_id`` (``NoSuchAggregate``, a ``NotFound``, when there is none);
   on FerretDB under the aggregate's write lock, held until step 5 is written, so that
   write needs no second read (``Writes.holding``, decision 0013);
2. if ``command_id`` (the causing command or event id) was applied already, return the
   aggregate unchanged: a retried command or a redelivered event changes nothing;
3. call the pure domain function, which changes the aggregate and returns its events;
4. when nothing changed and no event came out, stop without writing (no version bump);
5. wrap each event in a CloudEvent (subject = aggregate id), route it to its topic, and
   write the new state, the events (outbox), the applied id and ONE audit entry (actor,
   time, action, reason, old and new values of the fields that changed) in one atomic
   single-document update conditional on the version that was read; the version goes up
   by exactly one;
6. on a version conflict, start again at 1 with the fresh aggregate (the domain function
   runs again on the new state, so its rules are checked again), at most ``attempts``
   times, then ``Conflict`` (409);
7. after the write, announce the pending events to the relay (a small pending collection)
   and wake it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from pmm_contracts.envelope import CloudEvent, EventData, new_event
from pmm_runtime.errors import Conflict, NoSuchAggregate
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import APPLIED, VERSION, AggregateStore, Outgoing, Pending, audit_entry

A = TypeVar("A")

DomainChange = Callable[[A], Sequence[EventData] | None]
"""A pure function: changes the aggregate in place, returns the events it caused."""


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[Document, Document]:
    """Old and new values of what changed; for lists only the entries removed and added."""
    old: Document = {}
    new: Document = {}
    for key in sorted(set(before) | set(after)):
        was, now = before.get(key), after.get(key)
        if was == now:
            continue
        if isinstance(was, list) and isinstance(now, list):
            old[key] = [x for x in was if x not in now]
            new[key] = [x for x in now if x not in was]
        else:
            old[key], new[key] = was, now
    return old, new


class Aggregates(Generic[A]):
    """One kind of aggregate in its collection: how to read, write and route it.

    ``model`` is a dataclass or pydantic model with ``id`` and ``version`` attributes; its
    other fields are the document's fields. Subclasses add the queries their domain asks
    (in ``adapters/``) and may override ``topic`` to route events by type or content.
    """

    name: str = "aggregate"

    def __init__(self, store: AggregateStore, model: type[A], *, topic: str) -> None:
        self.store = store
        self.collection = store.collection
        self._adapter: TypeAdapter[A] = TypeAdapter(model)
        self.default_topic = topic

    def dump(self, aggregate: A) -> Document:
        """The document fields of ``aggregate`` (JSON-compatible), without id and version."""
        fields: Document = self._adapter.dump_python(aggregate, mode="json")
        fields.pop("id", None)
        fields.pop("version", None)
        return fields

    def load(self, document: Mapping[str, Any]) -> A:
        data = {k: v for k, v in document.items() if not k.startswith("_")}
        return self._adapter.validate_python(
            {**data, "id": document["_id"], "version": document.get(VERSION, 1)}
        )

    def topic(self, aggregate: A, event: EventData) -> str:
        """The topic an event of ``aggregate`` goes to."""
        return self.default_topic

    async def get(self, aggregate_id: str) -> A | None:
        document = await self.store.get(aggregate_id)
        return self.load(document) if document else None

    async def written(self, aggregate: A) -> None:
        """Called after each write of ``aggregate``: keep small index collections up to date
        (e.g. a due-date index for a periodic scan). Written after the aggregate, so a crash
        in between leaves the index behind: a repository that has one rebuilds it at
        start-up."""


@dataclass
class Applied(Generic[A]):
    """What ``apply`` did: the aggregate as it is now, and the events it wrote (if any)."""

    aggregate: A
    events: list[EventData] = field(default_factory=list)
    changed: bool = False


BeforeWrite = Callable[[A, Sequence[EventData]], Awaitable[None]]


def _now() -> datetime:
    return datetime.now(UTC)


class Changes:
    """The change loop of one service process (``Platform.changes``)."""

    def __init__(
        self,
        *,
        source: str,
        notify: Callable[[], None] = lambda: None,
        now: Callable[[], datetime] = _now,
        attempts: int = 5,
    ) -> None:
        self.source = source
        self.notify = notify
        self.now = now
        self.attempts = attempts

    def envelopes(
        self,
        repo: Aggregates[A],
        aggregate: A,
        events: Sequence[EventData],
        *,
        caused_by: str | None = None,
    ) -> list[Pending]:
        """Each event in its envelope, routed. Ids derived from the causing command or event
        (``uuid5``) make a re-run after a crash produce the same event ids."""
        subject = str(getattr(aggregate, "id"))  # noqa: B009 - A is any model with an id
        out: list[Pending] = []
        for n, data in enumerate(events):
            event_id = (
                uuid.uuid5(uuid.NAMESPACE_URL, f"{caused_by}:{subject}:{n}") if caused_by else None
            )
            envelope: CloudEvent[Any] = new_event(
                data, subject=subject, source=self.source, event_id=event_id, time=self.now()
            )
            out.append(Outgoing(repo.topic(aggregate, data), envelope))
        return out

    async def create(
        self,
        repo: Aggregates[A],
        aggregate: A,
        events: Sequence[EventData],
        *,
        actor: str,
        action: str,
        reason: str | None = None,
        command_id: str | None = None,
    ) -> bool:
        """Insert a new aggregate with its events and first audit entry; False when its id
        exists already (a replayed creation with a derived id is then a no-op)."""
        state = repo.dump(aggregate)
        created = await repo.store.create(
            str(getattr(aggregate, "id")),  # noqa: B009
            state,
            self.envelopes(repo, aggregate, events, caused_by=command_id),
            caused_by=command_id,
            audit=audit_entry(
                actor=actor,
                action=action,
                reason=reason,
                new=_compact(state),
                at=self.now(),
                command_id=command_id,
            ),
        )
        if created:
            aggregate.version = 1  # type: ignore[attr-defined]
            await repo.written(aggregate)
            self.notify()
        return created

    async def apply(
        self,
        repo: Aggregates[A],
        aggregate_id: str,
        command_id: str | None,
        change: DomainChange[A],
        *,
        actor: str,
        action: str,
        reason: str | None = None,
        before_write: BeforeWrite[A] | None = None,
        extra_push: Callable[[A], Mapping[str, Any] | None] | None = None,
    ) -> Applied[A]:
        """Run ``change`` on the aggregate and write its outcome (see the module doc).

        ``before_write`` runs after the domain change and before the write, on every
        attempt (e.g. a budget commitment that decides whether the change may happen);
        ``extra_push`` adds array entries to the same atomic write (e.g. figures deltas).
        """
        for _ in range(self.attempts):
            async with repo.store.holding(aggregate_id) as held:
                document = held.document
                if document is None:
                    raise NoSuchAggregate(f"no {repo.name} {aggregate_id!r}")
                aggregate = repo.load(document)
                if command_id is not None and command_id in (document.get(APPLIED) or []):
                    return Applied(aggregate)
                before = repo.dump(aggregate)
                events = list(change(aggregate) or [])
                after = repo.dump(aggregate)
                if not events and before == after:
                    return Applied(aggregate)
                if before_write is not None:
                    await before_write(aggregate, events)
                old, new = diff(before, after)
                saved = await repo.store.update(
                    aggregate_id,
                    expected_version=int(document.get(VERSION, 1)),
                    set_fields=after,
                    events=self.envelopes(repo, aggregate, events, caused_by=command_id),
                    caused_by=command_id,
                    audit=audit_entry(
                        actor=actor,
                        action=action,
                        reason=reason,
                        old=old,
                        new=new,
                        at=self.now(),
                        command_id=command_id,
                    ),
                    push=extra_push(aggregate) if extra_push else None,
                    held=held,
                )
            if saved is not None:
                aggregate.version = int(saved[VERSION])  # type: ignore[attr-defined]
                await repo.written(aggregate)
                self.notify()
                return Applied(aggregate, events, changed=True)
        raise Conflict(f"{repo.name} {aggregate_id!r} kept changing meanwhile; try again")


def _compact(state: Mapping[str, Any]) -> Document:
    """The audit entry of a creation: the scalar fields set (lists and objects by size)."""
    out: Document = {}
    for key, value in state.items():
        if value is None or value == [] or value == {}:
            continue
        out[key] = value
    return out
