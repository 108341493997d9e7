"""The register read model's queries by key read one document by bare ``_id``, on the real
store (FerretDB 1.24 decodes every document for any other filter: decision 0008)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from pmm_runtime.mongo import Document
from pmm_runtime.readmodel import RegisterReadModel
from pmm_runtime.settings import ServiceSettings

from .support import platform

pytestmark = pytest.mark.integration


class Filters(monitoring.CommandListener):
    def __init__(self) -> None:
        self.finds: list[dict[str, Any]] = []

    def started(self, event: Any) -> None:
        if event.command_name == "find":
            self.finds.append(dict(event.command.get("filter") or {}))

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


async def test_membership_is_read_by_bare_id(
    make_settings: Callable[..., ServiceSettings],
) -> None:
    settings = make_settings(service_name="readmodel")
    model = RegisterReadModel(platform(settings))
    filters = Filters()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongodb_url, tz_aware=True, event_listeners=[filters]
    )
    model.organisations = client[settings.database_name]["register_organisations"]
    try:
        await model.organisations.insert_many(
            [
                {"_id": "member", "is_member": True, "version": 1},
                {"_id": "left", "is_member": False, "version": 2},
            ]
        )
        filters.finds.clear()
        answers = [await model.is_member(code) for code in ("member", "left", "unknown")]
        assert answers == [True, False, False]
        assert filters.finds == [{"_id": "member"}, {"_id": "left"}, {"_id": "unknown"}]
    finally:
        await client.drop_database(settings.database_name)
        await client.close()
