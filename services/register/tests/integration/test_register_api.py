"""The register over HTTP, with the real broker and store: access, bad input, changelog."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pmm_contracts.topics import REGISTER_ORGANISATIONS, REGISTER_PROFESSIONALS
from pmm_register.app import create_app
from pmm_register.settings import RegisterSettings
from pmm_runtime.auth import LocalIssuer
from pmm_runtime.testing import bearer, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(
    make_settings: Callable[..., RegisterSettings], serve: Any, issuer: LocalIssuer, unique: str
) -> tuple[httpx.AsyncClient, dict[str, str], str]:
    client = await serve(create_app(make_settings(RegisterSettings)))
    admin = bearer(issuer, "pmm", "register_admin")
    # Bootstrap: PMM itself and one executing organisation, both joined.
    org = f"uwv{unique[:6]}"
    for code, kind in (("pmm", "ministry"), (org, "executing_organisation")):
        response = await client.post(
            "/organisations",
            headers=admin,
            json={"code": code, "name": code.upper(), "kind": kind, "joined_on": "2024-01-01"},
        )
        assert response.status_code == 201, response.text
    return client, admin, org


def professional(org: str, email: str, **extra: Any) -> dict[str, Any]:
    body = {
        "organisation": org,
        "name": "Anna de Vries",
        "function": "klantmanager",
        "roles": ["maatwerk_professional"],
        "life_domains": ["income", "work_and_education"],
        "tags": ["Participatiewet"],
        "email": email,
        "phone": "+31 20 555 0101",
        "urgent_phone": "+31 6 1234 5678",
    }
    body.update(extra)
    return body


async def test_register_search_and_contact(
    api: tuple[httpx.AsyncClient, dict[str, str], str], issuer: LocalIssuer
) -> None:
    client, admin, org = api
    created = await client.post(
        "/professionals", headers=admin, json=professional(org, f"anna@{org}.nl", id=f"{org}-anna")
    )
    assert created.status_code == 201, created.text
    deputy = await client.post(
        "/professionals",
        headers=admin,
        json=professional(
            org, f"bert@{org}.nl", id=f"{org}-bert", name="Bert Bakker", urgent_phone=None
        ),
    )
    assert deputy.status_code == 201
    reader = bearer(issuer, org, "maatwerk_professional")

    found = (
        await client.get(
            "/professionals", headers=reader, params={"organisation": org, "q": "vries"}
        )
    ).json()
    assert found["total"] == 1
    assert found["items"][0]["id"] == f"{org}-anna"
    by_domain = (
        await client.get(
            "/professionals", headers=reader, params={"life_domain": "income", "organisation": org}
        )
    ).json()
    assert by_domain["total"] == 2

    urgent = (
        await client.get(
            "/contact",
            headers=reader,
            params={"organisation": org, "life_domain": "income", "urgent": "true"},
        )
    ).json()["items"]
    assert [c["professional"]["id"] for c in urgent] == [f"{org}-anna"]
    assert urgent[0]["call"] == "+31 6 1234 5678"

    # Anna is away: her deputy is proposed in her place.
    me = bearer(issuer, org, "maatwerk_professional", subject=f"{org}-anna")
    away = await client.put(
        f"/professionals/{org}-anna/absence",
        headers=me,
        json={"until": "2099-01-01", "deputy_id": f"{org}-bert"},
    )
    assert away.status_code == 200, away.text
    contacts = (await client.get("/contact", headers=reader, params={"organisation": org})).json()
    assert [c["professional"]["id"] for c in contacts["items"]] == [f"{org}-bert"]


async def test_access_rules(
    api: tuple[httpx.AsyncClient, dict[str, str], str], issuer: LocalIssuer
) -> None:
    client, admin, org = api
    assert (await client.get("/professionals")).status_code == 401
    outsider = bearer(issuer, "notjoined", "maatwerk_professional")
    assert (await client.get("/professionals", headers=outsider)).status_code == 403
    member = bearer(issuer, org, "maatwerk_professional", subject="someone")
    response = await client.post(
        "/professionals", headers=member, json=professional(org, f"x@{org}.nl")
    )
    assert response.status_code == 403
    created = await client.post(
        "/professionals", headers=admin, json=professional(org, f"self@{org}.nl", id=f"{org}-self")
    )
    assert created.status_code == 201
    own = bearer(issuer, org, "maatwerk_professional", subject=f"{org}-self")
    patched = await client.patch(
        f"/professionals/{org}-self", headers=own, json={"function": "consulent"}
    )
    assert patched.status_code == 200
    other = await client.patch(
        f"/professionals/{org}-self", headers=member, json={"function": "hacked"}
    )
    assert other.status_code == 403


async def test_bad_input_is_refused_and_nothing_is_half_written(
    api: tuple[httpx.AsyncClient, dict[str, str], str], issuer: LocalIssuer
) -> None:
    client, admin, org = api
    bad_email = await client.post(
        "/professionals", headers=admin, json=professional(org, "not-an-email")
    )
    assert bad_email.status_code == 422
    assert bad_email.json()["errors"][0]["field"] == "email"
    unknown_org = await client.post(
        "/professionals", headers=admin, json=professional("nosuchorg", "a@b.nl")
    )
    assert unknown_org.status_code == 422
    assert "nosuchorg" in unknown_org.json()["detail"]
    unknown_role = await client.post(
        "/professionals", headers=admin, json=professional(org, "c@d.nl", roles=["wizard"])
    )
    assert unknown_role.status_code == 422
    assert unknown_role.json()["errors"][0]["field"].startswith("roles")
    wrong_role = await client.post(
        "/professionals", headers=admin, json=professional(org, "e@f.nl", roles=["ambassador"])
    )
    assert wrong_role.status_code == 422
    first = await client.post(
        "/professionals", headers=admin, json=professional(org, f"dup@{org}.nl")
    )
    assert first.status_code == 201
    duplicate = await client.post(
        "/professionals", headers=admin, json=professional(org, f"DUP@{org}.nl")
    )
    assert duplicate.status_code == 409
    reader = bearer(issuer, org, "maatwerk_professional")
    listed = (
        await client.get("/professionals", headers=reader, params={"organisation": org})
    ).json()
    assert listed["total"] == 1  # only the one valid entry was written


async def test_a_second_entry_with_an_address_in_use_is_409_on_change_too(
    api: tuple[httpx.AsyncClient, dict[str, str], str],
) -> None:
    client, admin, org = api
    for name in ("one", "two"):
        created = await client.post(
            "/v1/professionals",
            headers=admin,
            json=professional(org, f"{name}@{org}.nl", id=f"{org}-{name}"),
        )
        assert created.status_code == 201, created.text
    taken = await client.patch(
        f"/v1/professionals/{org}-two", headers=admin, json={"email": f"One@{org}.nl"}
    )
    assert taken.status_code == 409, taken.text
    assert taken.headers["content-type"] == "application/problem+json"
    problem = taken.json()
    assert problem["type"] == "urn:nl:pmm:problem:conflict"
    assert problem["field"] == "email"
    entry = (await client.get(f"/v1/professionals/{org}-two", headers=admin)).json()
    assert entry["email"] == f"two@{org}.nl"  # nothing changed
    assert entry["version"] == 1


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\n", "\x7f", "\u2028"])
async def test_names_with_control_characters_are_422_naming_the_field(
    api: tuple[httpx.AsyncClient, dict[str, str], str], char: str
) -> None:
    client, admin, org = api
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        (
            "post",
            "/v1/organisations",
            {"code": "badname", "name": f"Bad{char}", "kind": "ministry"},
            "name",
        ),
        ("patch", f"/v1/organisations/{org}", {"region": f"Noord{char}"}, "region"),
        (
            "post",
            f"/v1/organisations/{org}/commitment",
            {"committed_on": "2024-01-01", "signed_by": f"DG{char}"},
            "signed_by",
        ),
        ("post", "/v1/professionals", professional(org, f"c@{org}.nl", name=f"Anna{char}"), "name"),
        (
            "post",
            "/v1/professionals",
            professional(org, f"c@{org}.nl", function=f"x{char}y"),
            "function",
        ),
        (
            "post",
            "/v1/professionals",
            professional(org, f"c@{org}.nl", tags=["ok", f"W{char}W"]),
            "tags.1",
        ),
    ]
    for method, path, body, field in cases:
        response = await client.request(method, path, headers=admin, json=body)
        assert response.status_code == 422, (path, field, response.text)
        assert response.json()["errors"][0]["field"] == field
    bad_email = professional(org, f"c{char}d@{org}.nl")
    response = await client.post("/v1/professionals", headers=admin, json=bad_email)
    assert response.json()["errors"][0]["field"] == "email"
    removal = await client.delete(
        f"/v1/professionals/{org}-nobody", headers=admin, params={"reason": f"AVG{char}"}
    )
    assert removal.status_code == 422
    assert removal.json()["errors"][0]["field"] == "reason"
    search = await client.get(
        "/v1/professionals", headers=admin, params={"organisation": org, "q": f"a{char}"}
    )
    assert search.status_code == 422
    assert search.json()["errors"][0]["field"] == "q"


async def test_paging_bounds_and_the_unversioned_paths(
    api: tuple[httpx.AsyncClient, dict[str, str], str],
) -> None:
    client, admin, _ = api
    for path in ("/v1/professionals", "/v1/organisations", "/v1/contact?organisation=pmm"):
        huge = await client.get(path, headers=admin, params={"page": 2305843009213693952})
        assert huge.status_code == 422, path
        assert huge.json()["errors"][0]["field"] == "page"
    first = (await client.get("/v1/organisations", headers=admin, params={"page_size": 1})).json()
    assert first["page_size"] == 1
    assert len(first["items"]) == 1
    assert first["total"] >= 2
    assert first["next"] is not None
    assert "page=2" in first["next"]
    old = await client.get("/organisations", headers=admin)
    assert old.status_code == 200
    assert old.headers["API-Version"] == "1.0.0"
    assert (await client.get("/v1/organisations/nosuch", headers=admin)).json()["type"] == (
        "urn:nl:pmm:problem:not-found"
    )


async def test_changelog_is_full_state_and_removal_is_a_tombstone(
    api: tuple[httpx.AsyncClient, dict[str, str], str], infra: Any
) -> None:
    client, admin, org = api
    pid = f"{org}-gone"
    await client.post(
        "/professionals", headers=admin, json=professional(org, f"gone@{org}.nl", id=pid)
    )
    removed = await client.delete(
        f"/professionals/{pid}", headers=admin, params={"reason": "AVG erasure request"}
    )
    assert removed.status_code == 204
    assert (await client.get(f"/professionals/{pid}", headers=admin)).status_code == 404

    async def records_for(topic: str, key: str, count: int) -> list[Any]:
        for _ in range(20):
            records = [
                r
                for r in await read_topic(infra.kafka_bootstrap, topic, count=10**6, timeout_s=2)
                if r.key == key.encode()
            ]
            if len(records) >= count:
                return records
        raise AssertionError(f"fewer than {count} records for {key} on {topic}")

    (state, tombstone) = await records_for(REGISTER_PROFESSIONALS, pid, 2)
    payload = json.loads(state.value)
    assert payload["type"] == "nl.maatwerk.register.professional.state"
    assert payload["data"]["email"] == f"gone@{org}.nl"
    assert tombstone.value is None
    (org_state,) = (await records_for(REGISTER_ORGANISATIONS, org, 1))[-1:]
    assert json.loads(org_state.value)["data"]["is_member"] is True


async def test_stale_entries_get_a_verification_request_and_verifying_clears_it(
    api: tuple[httpx.AsyncClient, dict[str, str], str], issuer: LocalIssuer, infra: Any
) -> None:
    import dataclasses
    from datetime import date, timedelta

    from pmm_register.service import usecases as uc

    client, admin, org = api
    pid = f"{org}-old"
    await client.post(
        "/professionals", headers=admin, json=professional(org, f"old@{org}.nl", id=pid)
    )
    deps: uc.Deps = client._transport.app.state.deps  # type: ignore[attr-defined]
    next_year = date.today() + timedelta(days=370)
    later = dataclasses.replace(deps, today=lambda: next_year)
    assert await uc.request_verifications(later) >= 1
    assert await uc.request_verifications(later) == 0  # asked once, not at every scan
    me = bearer(issuer, org, "maatwerk_professional", subject=pid)
    entry = (await client.get(f"/professionals/{pid}", headers=me)).json()
    assert entry["stale"] is True

    records = [
        r
        for r in await read_topic(
            infra.kafka_bootstrap, "pmm.register.verification-requests", count=10**6, timeout_s=3
        )
        if r.key == pid.encode()
    ]
    assert len(records) == 1
    request = json.loads(records[0].value)
    assert request["type"] == "nl.maatwerk.register.professional.verification_requested"
    assert request["data"]["organisation"] == org

    verified = await client.post(f"/professionals/{pid}/verify", headers=me)
    assert verified.status_code == 200
    assert verified.json()["stale"] is False
