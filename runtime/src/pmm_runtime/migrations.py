"""One-time start-up migrations of a database, each marked done in ``migrations``.

A new index document that older versions did not write (a regievoerder's cases, an
organisation's role holders, an application's ledger entries: decision 0015) is filled
once from what is stored, at start-up, before the service consumes. That is a scan, so it
must not run at every start: its marker ``{_id: name, at, ...what it reports}`` makes
every later start one read by bare ``_id``. The migration must be idempotent: a crash
midway leaves no marker and the next start runs it again, and replicas starting together
may both run it (the second marker is a duplicate and ignored). Delete the marker to run
it again (e.g. after an older version kept writing next to the new one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from pmm_runtime.mongo import Document
from pmm_runtime.writes import Writes

MIGRATIONS = "migrations"
"""The collection of the markers, one per migration done."""


async def once(
    markers: AsyncCollection[Document],
    writes: Writes,
    name: str,
    migrate: Callable[[], Awaitable[Mapping[str, Any]]],
) -> Mapping[str, Any] | None:
    """Run ``migrate`` unless the marker ``name`` in ``markers`` (the database's
    ``MIGRATIONS`` collection) says it was done; then write the marker with what it
    reports (e.g. how many documents it changed). The report, or None when it had been
    done."""
    if await markers.find_one({"_id": name}, {"_id": 1}) is not None:
        return None
    report = dict(await migrate())
    with contextlib.suppress(DuplicateKeyError):  # another replica finished it too
        await writes.insert_one(markers, {"_id": name, "at": datetime.now(UTC), **report})
    return report
