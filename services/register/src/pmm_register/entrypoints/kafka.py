"""What the register consumes: only its own professionals' changelog, read from offset 0
without a consumer group into each replica's in-memory search index
(``adapters/search_index``); nothing is committed, no use case runs.
"""

from __future__ import annotations

import asyncio

from pmm_contracts.events.register import ProfessionalState
from pmm_contracts.topics import REGISTER_PROFESSIONALS
from pmm_register.adapters.search_index import SearchIndex
from pmm_runtime import kafka_security
from pmm_runtime.platform import Platform


def follow_changelog(platform: Platform, index: SearchIndex) -> None:
    """Feed ``index`` from the changelog for as long as the process runs; ``/readyz``
    waits for its replay."""
    connection = kafka_security.connection(platform.settings, client_id="pmm-register-index")

    async def search_index(stop: asyncio.Event) -> None:
        await index.follow(connection, REGISTER_PROFESSIONALS, stop)

    async def search_index_ready() -> bool:
        return index.ready

    platform.background(search_index)
    # In the AsyncAPI document as consumed; no consumer group and no dead letters (an
    # undecodable record is the register's own and is skipped by the index).
    platform.catalogue.add(
        REGISTER_PROFESSIONALS,
        "receive",
        events=[ProfessionalState],
        description="Each replica's search index replays and follows the changelog "
        "(no consumer group, nothing committed)",
    )
    # The store's answer in the meantime is correct but slow on FerretDB.
    platform.readiness("search_index", search_index_ready)
