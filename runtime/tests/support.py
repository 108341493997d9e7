"""A tiny test-only event and platform builder: the runtime knows no domain."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient, monitoring

from pmm_contracts.envelope import EventData
from pmm_runtime.mongo import Document
from pmm_runtime.platform import Platform
from pmm_runtime.settings import ServiceSettings


class Counted(EventData):
    EVENT_TYPE = "nl.maatwerk.test.counted"

    counter_id: str
    amount: int


REGISTRY: dict[str, type[EventData]] = {Counted.EVENT_TYPE: Counted}


def platform(settings: ServiceSettings, **kwargs: Any) -> Platform:
    return Platform(settings, registry=REGISTRY, configure_logs=False, **kwargs)


class Commands(monitoring.CommandListener):
    """What a client sends (PyMongo command monitoring): each command's name, collection
    and number of documents (an ``update`` or ``delete``: of statements), and the filter
    of each ``delete`` statement (``deleted``)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int]] = []
        self.deleted: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: Any) -> None:
        command = event.command
        collection = str(command.get(event.command_name))
        statements = command.get("documents") or command.get("updates") or command.get("deletes")
        self.sent.append((event.command_name, collection, len(statements or [])))
        for statement in command.get("deletes") or []:
            self.deleted.append((collection, dict(statement["q"])))

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass

    def inserts(self) -> list[int]:
        """The documents of each ``insert`` command, in order."""
        return [n for name, _, n in self.sent if name == "insert"]

    def updates(self, collection: str) -> list[int]:
        """The statements of each ``update`` command of ``collection``, in order."""
        return [n for name, c, n in self.sent if name == "update" and c == collection]

    def finds(self, collection: str) -> int:
        return sum(1 for name, c, _ in self.sent if name == "find" and c == collection)


def watched_client(settings: ServiceSettings) -> tuple[AsyncMongoClient[Document], Commands]:
    """A store client of its own whose commands are recorded (``Commands``)."""
    seen = Commands()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongodb_url, tz_aware=True, event_listeners=[seen]
    )
    return client, seen
