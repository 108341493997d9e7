"""Each replica's search index against the real broker and store: it answers like the
store, learns the other replica's writes and removals from the changelog, and its own at
once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from pmm_contracts.vocabulary import LifeDomain
from pmm_register.adapters.repository import Professionals
from pmm_register.adapters.search_index import Filters
from pmm_register.app import create_app
from pmm_register.service import commands as c
from pmm_register.service import usecases as uc
from pmm_register.settings import RegisterSettings
from pmm_runtime.auth import Identity, LocalIssuer
from pmm_runtime.http import PageQuery
from pmm_runtime.testing import bearer, eventually

pytestmark = pytest.mark.integration


async def test_two_replicas_search_their_indexes_like_the_store(
    make_settings: Callable[..., RegisterSettings],
    serve: Any,
    issuer: LocalIssuer,
    unique: str,
) -> None:
    settings = make_settings(RegisterSettings)  # one database, two replicas
    app_a, app_b = create_app(settings), create_app(settings)
    a, b = await serve(app_a), await serve(app_b)
    deps_a: uc.Deps = app_a.state.deps
    deps_b: uc.Deps = app_b.state.deps
    index_a, index_b = deps_a.professionals.index, deps_b.professionals.index
    assert index_a is not None
    assert index_b is not None
    await eventually(lambda: index_a.ready and index_b.ready, timeout_s=60)
    ready = await b.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["search_index"] == "ok"

    admin = bearer(issuer, "pmm", "register_admin")
    org = f"svb{unique[:6]}"
    for code, kind in (("pmm", "ministry"), (org, "executing_organisation")):
        r = await a.post(
            "/organisations",
            headers=admin,
            json={"code": code, "name": code, "kind": kind, "joined_on": "2024-01-01"},
        )
        assert r.status_code == 201, r.text
    people = [
        ("anna", "Anna de Vries", ["income", "housing"], ["Participatiewet"]),
        ("bert", "Bert Bakker", ["income"], ["AOW"]),
        ("cees", "Cees de Vries", ["debts"], ["Participatiewet", "Wsnp"]),
        ("dana", "Dana Smit", ["housing"], []),
    ]
    for pid, name, domains, tags in people:
        r = await a.post(
            "/professionals",
            headers=admin,
            json={
                "id": f"{org}-{pid}",
                "organisation": org,
                "name": name,
                "function": "klantmanager",
                "roles": ["maatwerk_professional"],
                "life_domains": domains,
                "tags": tags,
                "email": f"{pid}@{org}.nl",
            },
        )
        assert r.status_code == 201, r.text
    # Replica A knows its own writes at once; B learns them from the changelog.
    assert index_a.search(Filters(organisation=org), skip=0, limit=10)[0] == 4
    await eventually(lambda: index_b.search(Filters(organisation=org), skip=0, limit=10)[0] == 4)

    queries = [
        (c.SearchQuery(organisation=org), PageQuery()),
        (c.SearchQuery(organisation=org, q="de vries"), PageQuery()),
        (c.SearchQuery(organisation=org, life_domain=LifeDomain.INCOME), PageQuery()),
        (c.SearchQuery(organisation=org, tag="Participatiewet"), PageQuery(page=2, page_size=1)),
        (c.SearchQuery(organisation=org, q="klantmanager smit"), PageQuery()),
    ]
    without_index = replace(deps_b, professionals=_store_only(deps_b))
    member = Identity("someone", org, frozenset({"maatwerk_professional"}))
    for query, paging in queries:
        from_index = await uc.search(deps_b, member, query, paging)
        from_store = await uc.search(without_index, member, query, paging)
        assert from_index[0] == from_store[0], query
        assert [p.id for p in from_index[1]] == [p.id for p in from_store[1]], query
        assert from_index[1][0].email if from_index[1] else True  # full entries, not ids

    # A removal on A disappears from B's answers.
    reader = bearer(issuer, org, "maatwerk_professional")
    assert (await a.delete(f"/professionals/{org}-cees", headers=admin)).status_code == 204

    async def gone_on_b() -> bool:
        r = await b.get("/professionals", headers=reader, params={"organisation": org})
        return r.json()["total"] == 3 and index_b.get(f"{org}-cees") is None

    assert await eventually(gone_on_b)


def _store_only(deps: uc.Deps) -> Professionals:
    return Professionals(deps.professionals.store, index=None)
