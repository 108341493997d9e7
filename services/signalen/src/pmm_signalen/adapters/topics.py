"""Provision an organisation's two topics when it first gets an assignment."""

from __future__ import annotations

from pmm_contracts.cli import provision
from pmm_contracts.topics import org_topics


class OrgTopics:
    """Idempotent, and remembered per process so the admin client is used once per org."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._known: set[str] = set()

    async def ensure(self, org: str) -> None:
        if org in self._known:
            return
        await provision(self._bootstrap, list(org_topics(org)))
        self._known.add(org)
