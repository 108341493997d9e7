"""Provision an organisation's two topics when it first gets an assignment."""

from __future__ import annotations

from pmm_contracts.cli import Durability, provision
from pmm_contracts.connection import Connection
from pmm_contracts.topics import org_topics


class OrgTopics:
    """Idempotent, and remembered per process so the admin client is used once per org.

    ``connection`` is signalen's own (``pmm_runtime.kafka_security.connection``): on a
    secured broker its principal may create topics with the prefixes
    ``pmm.signalen.assigned.`` and ``pmm.signalen.responses.`` and nothing else. The topics
    get the replication of ``durability`` (``PMM_KAFKA_REPLICATION_FACTOR`` /
    ``PMM_KAFKA_MIN_INSYNC_REPLICAS``).
    """

    def __init__(self, connection: Connection, durability: Durability | None = None) -> None:
        self._connection = connection
        self._durability = durability or Durability()
        self._known: set[str] = set()

    async def ensure(self, org: str) -> None:
        if org in self._known:
            return
        await provision(
            self._connection.bootstrap,
            list(org_topics(org)),
            connection=self._connection,
            durability=self._durability,
        )
        self._known.add(org)
