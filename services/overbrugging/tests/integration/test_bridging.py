"""The overbruggingsprocedure against the real broker and store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient, monitoring

from pmm_contracts import encode_event, new_event
from pmm_contracts.events.cases import BridgingRequested, Urgency
from pmm_contracts.topics import LOKET_CASES, OVERBRUGGING_APPLICATIONS
from pmm_overbrugging.adapters.repository import (
    ENTRIES_MIGRATION,
    AlreadyBooked,
    Booking,
    BridgingRepository,
)
from pmm_overbrugging.app import create_app
from pmm_overbrugging.domain.model import (
    CONDITIONS,
    Application,
    ForbiddenTransition,
    Form,
    InsufficientBudget,
    Status,
)
from pmm_overbrugging.service import usecases as uc
from pmm_overbrugging.settings import OverbruggingSettings
from pmm_runtime.auth import Identity, LocalIssuer
from pmm_runtime.errors import Conflict, RuleViolation
from pmm_runtime.mongo import Document
from pmm_runtime.outbox import AggregateStore
from pmm_runtime.testing import bearer, eventually, read_topic

pytestmark = pytest.mark.integration
LOKET = "urn:nld:oin:00000001234567890000:systeem:loket"
HOLDER = Identity(subject="b1", organisation="pmm", roles=frozenset({"budget_holder"}))


def request(case_id: str, request_id: str) -> Any:
    data = BridgingRequested(
        case_id=case_id,
        case_number="LMM-2026-0042",
        request_id=request_id,
        provision="beschermd wonen",
        provider="Zorgaanbieder Noord",
        estimated_amount=Decimal("4250.00"),
        candidate_payers=("gm0363", "vws"),
        dispute="Wmo 2015 or Wlz: both parties point at the other",
        urgency=Urgency.ACUTE,
        settle_attempt="regievoerder called both parties twice",
        requested_by="d1",
    )
    return new_event(data, subject=case_id, source=LOKET)


@pytest.fixture
async def service(
    make_settings: Callable[..., OverbruggingSettings], serve: Any
) -> tuple[httpx.AsyncClient, uc.Deps]:
    app = create_app(make_settings(OverbruggingSettings))
    client = await serve(app)
    return client, app.state.deps


async def test_from_the_lokets_request_to_a_recovered_advance_end_to_end(
    service: tuple[httpx.AsyncClient, uc.Deps], issuer: LocalIssuer, infra: Any, unique: str
) -> None:
    client, deps = service
    holder = bearer(issuer, "pmm", "budget_holder")
    assert (
        await client.put("/budgets/2031", headers=holder, json={"total": "100000.00"})
    ).status_code == 200
    case_id, request_id = f"case-{unique}", f"req-{unique}"
    producer = AIOKafkaProducer(**infra.kafka_kwargs(), acks="all")
    await producer.start()
    try:
        event = request(case_id, request_id)
        for _ in range(2):  # the request is redelivered: one application only
            await producer.send_and_wait(LOKET_CASES, encode_event(event), key=event.key)
    finally:
        await producer.stop()
    application_id = str(uuid.uuid5(uc.NAMESPACE, request_id))
    await eventually(lambda: deps.repo.get(application_id), timeout_s=120)

    def post(path: str, body: dict[str, Any] | None = None) -> Any:
        return client.post(
            f"/applications/{application_id}/{path}", headers=holder, json=body or {}
        )

    early = await post(
        "decision",
        {
            "command_id": "approve-0001",
            "approve": True,
            "form": "advance",
            "amount": "4000.00",
            "budget_year": 2031,
        },
    )
    assert early.status_code == 422  # conditions not yet recorded
    assert early.json()["field"] == "conditions"
    assert "need_established" in early.json()["missing"]
    conditions = {name: {"met": True} for name in CONDITIONS}
    assert (await post("conditions", conditions)).status_code == 200
    approve = {
        "command_id": f"approve-{unique}",
        "approve": True,
        "form": "advance",
        "amount": "4000.00",
        "budget_year": 2031,
    }
    assert (await post("decision", approve)).status_code == 200
    assert (await post("decision", approve)).status_code == 200  # retried: booked once
    for path, body in (
        ("payment", {"command_id": f"pay-{unique}", "amount": "4000.00"}),
        (
            "responsible-party",
            {"responsible_party": "gm0363", "legal_ground": "Wmo 2015 art. 2.3.5 lid 3"},
        ),
        ("recovery", None),
        ("repayments", {"command_id": f"repay1-{unique}", "amount": "1500.00"}),
        ("repayments", {"command_id": f"repay2-{unique}", "amount": "2500.00"}),
    ):
        response = await post(path, body)
        assert response.status_code == 200, (path, response.text)
    assert response.json()["status"] == "recovered"

    figures = (await client.get("/budgets/2031", headers=holder)).json()
    assert figures["committed"] == "0.00"
    assert figures["available"] == "100000.00"
    assert figures["recovered"] == "4000.00"
    assert figures["ledger_consistent"] is True
    assert figures["recovery_rate"] == 1.0

    records = [
        r
        for r in await read_topic(
            infra.kafka_bootstrap, OVERBRUGGING_APPLICATIONS, count=10**6, timeout_s=4
        )
        if r.key == application_id.encode()
    ]
    types = [json.loads(r.value)["type"] for r in records]
    # Another process's overbrugging consumer on the shared local topic may receive this
    # request too and announce it: that the redelivery created nothing is the store's word.
    assert "nl.maatwerk.bridging.received" in types
    document = await deps.repo.store.get(application_id)
    assert document is not None
    assert [a["action"] for a in document["_audit"]].count("received") == 1
    assert types.count("nl.maatwerk.bridging.decided") == 1
    assert "nl.maatwerk.bridging.recovery_requested" in types
    assert types[-1] == "nl.maatwerk.bridging.closed"
    closed = json.loads(records[-1].value)["data"]
    assert closed["status"] == "recovered"
    booked = [
        json.loads(r.value)["data"]
        for r in records
        if json.loads(r.value)["type"] == "nl.maatwerk.bridging.booked"
    ]
    assert [b["amount"] for b in booked] == ["4000.00", "4000.00", "1500.00", "2500.00"]


@pytest.mark.timeout(900)  # ~57 s on an idle machine; minutes when the 2 cores are shared
async def test_a_thousand_concurrent_approvals_never_overdraw_the_budget(
    make_settings: Callable[..., OverbruggingSettings], serve: Any, unique: str
) -> None:
    # The relay's outbox scan cannot use an index on FerretDB and shares the one
    # connection: poll rarely here (approvals still wake it), so the test times approvals.
    app = create_app(make_settings(OverbruggingSettings, outbox_poll_interval_s=30))
    await serve(app)
    deps: uc.Deps = app.state.deps
    started = time.perf_counter()
    year = 2040 + int(unique[:4], 16) % 50
    await deps.repo.budgets.delete_one({"_id": year})
    await deps.repo.ledger.delete_many({"year": year})
    await deps.repo.set_budget(year, 10_000_00)  # 10,000 euro
    documents = []
    for i in range(1000):
        a = Application(
            id=f"{unique}-{i}",
            case_id=f"c{i}",
            case_number="LMM-2026-0001",
            request_id=f"r{i}",
            provision="p",
            provider="x",
            estimated_cents=100_00,
            candidate_payers=["a", "b"],
            received_on=deps.today(),
        )
        a.conditions = {name: {"met": True, "note": None} for name in CONDITIONS}
        # The same layout AggregateStore.create writes, in one round trip (setup only).
        documents.append(
            {
                **deps.repo.dump(a),
                "_id": a.id,
                "_version": 1,
                "_outbox": [],
                "_applied": [],
                "_audit": [],
            }
        )
    await deps.repo.collection.insert_many(documents)
    ids = [d["_id"] for d in documents]
    assert (await deps.repo.get(ids[-1])) is not None

    async def approve(application_id: str) -> bool:
        try:
            await uc.approve(
                deps,
                HOLDER,
                application_id,
                f"cmd-{application_id}",
                Form.ADVANCE,
                Decimal("100.00"),
                year,
                None,
            )
        except InsufficientBudget:
            return False
        return True

    setup_s = time.perf_counter() - started
    results = await asyncio.gather(*[approve(i) for i in ids])
    print(f"setup {setup_s:.1f}s, 1,000 approvals {time.perf_counter() - started - setup_s:.1f}s")
    budget = await deps.repo.budget(year)
    assert budget is not None
    assert sum(results) == 100  # exactly what 10,000 euro buys at 100 each
    assert budget["available_cents"] == 0
    assert budget["available_cents"] >= 0
    sums = await deps.repo.ledger_sums(year)
    assert sums == {"commitment": budget["committed_cents"]}
    assert budget["committed_cents"] == 10_000_00
    approved, _ = await deps.repo.search(status=Status.APPROVED, limit=1000)
    assert approved == 100


async def test_only_the_budget_holder_decides_and_bad_input_is_named(
    service: tuple[httpx.AsyncClient, uc.Deps], issuer: LocalIssuer
) -> None:
    client, _ = service
    staff = bearer(issuer, "pmm", "pmm_staff")
    assert (
        await client.put("/budgets/2032", headers=staff, json={"total": "10.00"})
    ).status_code == 403
    holder = bearer(issuer, "pmm", "budget_holder")
    bad = await client.put("/budgets/2032", headers=holder, json={"total": "-5"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "total"
    missing = await client.post(
        "/applications/nope/decision",
        headers=holder,
        json={"command_id": "c-12345678", "approve": True, "form": "advance", "amount": "1.00"},
    )
    assert missing.status_code == 404


async def test_concurrent_approvals_of_one_application_commit_the_budget_once(
    service: tuple[httpx.AsyncClient, uc.Deps], unique: str
) -> None:
    _, deps = service
    a, year = await ready_application(deps, unique, "one")

    async def approve(n: int) -> str:
        try:
            await uc.approve(
                deps, HOLDER, a.id, f"cmd-{unique}-{n}", Form.ADVANCE, Decimal("100.00"), year, None
            )
        except ForbiddenTransition:
            return "forbidden"
        return "approved"

    with all_read_first(deps, 20):  # the worst interleaving
        results = await asyncio.gather(*[approve(n) for n in range(20)])
    assert results.count("approved") == 1
    budget = await deps.repo.budget(year)
    assert budget is not None
    assert budget["committed_cents"] == 100_00  # not 20 x 100 euro
    assert budget["available_cents"] == 900_00
    assert await deps.repo.ledger_sums(year) == {"commitment": 100_00}
    # Another approval command with another amount cannot re-commit it either.
    with pytest.raises((ForbiddenTransition, Conflict)):
        await uc.approve(
            deps, HOLDER, a.id, f"cmd-{unique}-x", Form.ADVANCE, Decimal("50.00"), year, None
        )
    assert (await deps.repo.budget(year) or {})["committed_cents"] == 100_00


@contextlib.contextmanager
def all_read_first(deps: uc.Deps, n: int) -> Iterator[None]:
    """Force the worst interleaving: ``n`` concurrent commands each read the application
    before any of them goes on to book or save."""
    store = deps.repo.store
    read = store.get
    all_read, reads = asyncio.Event(), [0]

    async def read_then_wait(aggregate_id: str) -> Any:
        result = await read(aggregate_id)
        reads[0] += 1
        if reads[0] >= n:
            all_read.set()
        await all_read.wait()
        return result

    store.get = read_then_wait  # type: ignore[method-assign]
    try:
        yield
    finally:
        store.get = read  # type: ignore[method-assign]


async def ready_application(deps: uc.Deps, unique: str, name: str) -> tuple[Application, int]:
    """An application with all conditions met and a fresh budget year of 1,000 euro."""
    year = 2100 + int(uuid.uuid4().hex[:4], 16) % 800
    await deps.repo.budgets.delete_one({"_id": year})
    await deps.repo.ledger.delete_many({"year": year})
    await deps.repo.set_budget(year, 1_000_00)
    a = Application(
        id=f"{unique}-{name}",
        case_id="c1",
        case_number="LMM-2026-0001",
        request_id="r1",
        provision="p",
        provider="x",
        estimated_cents=100_00,
        candidate_payers=["a", "b"],
        received_on=deps.today(),
    )
    a.conditions = {name: {"met": True, "note": None} for name in CONDITIONS}
    assert await deps.changes.create(deps.repo, a, [], actor="test", action="test")
    return a, year


async def test_concurrent_different_repayments_book_only_what_the_application_records(
    service: tuple[httpx.AsyncClient, uc.Deps], unique: str
) -> None:
    _, deps = service
    a, year = await ready_application(deps, unique, "repay")
    await uc.approve(deps, HOLDER, a.id, "approve", Form.ADVANCE, Decimal("100.00"), year, None)
    await uc.pay(deps, HOLDER, a.id, f"pay-{unique}", Decimal("100.00"))
    await uc.determine(deps, HOLDER, a.id, "gm0363", "Wmo 2015 art. 2.3.1")
    await uc.request_recovery(deps, HOLDER, a.id)

    async def repay(n: int) -> str:
        try:
            await uc.repay(deps, HOLDER, a.id, f"repay-{unique}-{n}", Decimal("60.00"))
        except RuleViolation:
            return "refused"
        return "booked"

    with all_read_first(deps, 10):  # the worst interleaving
        results = await asyncio.gather(*[repay(n) for n in range(10)])
    assert results.count("booked") == 1  # 60 of the 100 outstanding; the rest do not fit
    application = await deps.repo.get(a.id)
    assert application is not None
    assert application.recovered_cents == 60_00
    sums = await deps.repo.ledger_sums(year)
    assert sums["recovery"] == 60_00  # the ledger holds exactly what the application records
    budget = await deps.repo.budget(year)
    assert budget is not None
    assert budget["recovered_cents"] == 60_00
    assert await deps.repo.pending_bookings(a.id) == []


async def test_a_step_that_crashes_before_its_booking_is_booked_once_afterwards(
    service: tuple[httpx.AsyncClient, uc.Deps], unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, deps = service
    a, year = await ready_application(deps, unique, "crash")
    await uc.approve(deps, HOLDER, a.id, "approve", Form.ADVANCE, Decimal("100.00"), year, None)
    book = deps.repo.book

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("process killed between the save and the booking")

    monkeypatch.setattr(deps.repo, "book", crash)
    with pytest.raises(RuntimeError):
        await uc.pay(deps, HOLDER, a.id, f"pay-{unique}", Decimal("100.00"))
    monkeypatch.setattr(deps.repo, "book", book)
    saved = await deps.repo.get(a.id)
    assert saved is not None
    assert saved.paid_cents == 100_00
    pending = await deps.repo.pending_bookings(a.id)
    assert [p.kind for p in pending] == ["payment"]  # owed, not yet in the ledger
    assert "payment" not in await deps.repo.ledger_sums(year)

    assert await uc.complete_pending_bookings(deps) >= 1  # the sweep books it
    await uc.pay(deps, HOLDER, a.id, f"pay-{unique}", Decimal("100.00"))  # a retry: no-op
    assert await deps.repo.pending_bookings(a.id) == []
    assert (await deps.repo.ledger_sums(year))["payment"] == 100_00
    assert (await deps.repo.budget(year) or {})["paid_cents"] == 100_00


async def test_a_commitment_retried_after_a_crash_keeps_the_amount_the_budget_moved_by(
    service: tuple[httpx.AsyncClient, uc.Deps], unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, deps = service
    a, year = await ready_application(deps, unique, "commit")
    insert = deps.repo.ledger.insert_one

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("process killed between the budget and the ledger write")

    monkeypatch.setattr(deps.repo.ledger, "insert_one", crash)
    with pytest.raises(RuntimeError):
        await uc.approve(deps, HOLDER, a.id, "first", Form.ADVANCE, Decimal("100.00"), year, None)
    monkeypatch.setattr(deps.repo.ledger, "insert_one", insert)
    with pytest.raises(Conflict):  # another amount for the same commitment
        await uc.approve(deps, HOLDER, a.id, "second", Form.ADVANCE, Decimal("50.00"), year, None)
    assert await deps.repo.ledger_sums(year) == {"commitment": 100_00}
    approved = await uc.approve(
        deps, HOLDER, a.id, "first", Form.ADVANCE, Decimal("100.00"), year, None
    )
    assert approved.amount_cents == 100_00
    budget = await deps.repo.budget(year)
    assert budget is not None
    assert budget["committed_cents"] == 100_00
    assert await deps.repo.ledger_sums(year) == {"commitment": 100_00}


async def test_the_v1_api_pages_filters_and_bounds_its_numbers(
    service: tuple[httpx.AsyncClient, uc.Deps], issuer: LocalIssuer, unique: str
) -> None:
    client, deps = service
    holder = bearer(issuer, "pmm", "budget_holder")
    for n in range(3):
        await deps.changes.create(
            deps.repo,
            Application(
                id=f"{unique}-{n}",
                case_id=f"case-{unique}" if n < 2 else "other",
                case_number="LMM-2026-0001",
                request_id=f"r{n}",
                provision="p",
                provider="x",
                estimated_cents=100_00,
                candidate_payers=["a", "b"],
                received_on=deps.today(),
            ),
            [],
            actor="test",
            action="received",
        )
    first = await client.get(
        "/v1/applications",
        headers=holder,
        params={"case_id": f"case-{unique}", "status": "received", "page_size": 1},
    )
    assert first.status_code == 200
    assert first.headers["API-Version"] == "1.0.0"
    page = first.json()
    assert (page["total"], page["page"], len(page["items"])) == (2, 1, 1)
    assert page["items"][0]["case_id"] == f"case-{unique}"
    second = (await client.get(page["next"], headers=holder)).json()
    assert second["next"] is None
    assert {page["items"][0]["id"], second["items"][0]["id"]} == {f"{unique}-0", f"{unique}-1"}
    none = await client.get(
        "/applications", headers=holder, params={"case_id": f"case-{unique}", "status": "paid"}
    )
    assert none.json()["total"] == 0

    for method, path, body, field in (
        ("GET", "/v1/applications?page=100000000000000000000", None, "page"),
        ("GET", "/applications?status=sleeping", None, "status"),
        ("GET", "/budgets/100000000000000000000", None, "year"),
        ("PUT", "/budgets/9223372036854775808", {"total": "10.00"}, "year"),
        ("PUT", "/v1/budgets/1999", {"total": "10.00"}, "year"),
    ):
        answer = await client.request(method, path, headers=holder, json=body)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        problem = answer.json()
        assert (problem["type"], problem["field"]) == ("urn:nl:pmm:problem:invalid-input", field)

    decision = await client.post(
        f"/v1/applications/{unique}-0/decision",
        headers=holder,
        json={"command_id": f"c-{unique}", "approve": True, "form": "advance"},
    )
    assert decision.status_code == 422
    assert decision.json()["field"] == "amount"
    assert decision.json()["type"] == "urn:nl:pmm:problem:rule-violation"
    early = await client.post(
        f"/v1/applications/{unique}-0/payment",
        headers=holder,
        json={"command_id": f"p-{unique}", "amount": "100.00"},
    )
    assert early.status_code == 409
    assert early.json()["current_status"] == "received"
    openapi = (await client.get("/openapi.json")).json()
    assert "/v1/applications" in openapi["paths"]
    assert "/applications" not in openapi["paths"]


async def test_a_budget_written_before_0011_is_migrated_and_its_bookings_stay_once(
    service: tuple[httpx.AsyncClient, uc.Deps], unique: str
) -> None:
    """A budget of the old form listed every command it applied (``commands``,
    ``amounts``). At start-up the lists go; a command without its ledger entry (a crash
    before it) stays in flight with its amount, and its retry writes that entry once."""
    _, deps = service
    year = 2900 + int(uuid.uuid4().hex[:4], 16) % 90
    await deps.repo.budgets.delete_one({"_id": year})
    await deps.repo.ledger.delete_many({"year": year})
    done, crashed = f"{unique}-done", f"{unique}-crashed"
    await deps.repo.budgets.insert_one(
        {
            "_id": year,
            "total_cents": 1_000_00,
            "available_cents": 700_00,
            "committed_cents": 300_00,
            "paid_cents": 0,
            "recovered_cents": 0,
            "written_off_cents": 0,
            "commands": [done, crashed],
            "amounts": [{"c": done, "n": 100_00}, {"c": crashed, "n": 200_00}],
        }
    )
    await deps.repo.ledger.insert_one(
        {
            "_id": done,
            "application_id": "a1",
            "year": year,
            "kind": "commitment",
            "amount_cents": 100_00,
        }
    )
    assert await deps.repo.migrate_budgets() >= 1
    budget = await deps.repo.budgets.find_one({"_id": year})
    assert budget is not None
    assert "commands" not in budget
    assert "amounts" not in budget
    assert budget["_inflight"] == [{"k": crashed, "n": 200_00}]

    for command, cents in ((done, 100_00), (crashed, 999_00)):  # retries of both
        with pytest.raises(AlreadyBooked):
            await deps.repo.book(Booking(command, year, "commitment", cents), "a2")
    assert await deps.repo.ledger_sums(year) == {"commitment": 300_00}
    figures = await uc.figures(deps, HOLDER, year)
    assert figures.ledger_consistent
    assert figures.available == Decimal("700.00")


class LedgerReads(monitoring.CommandListener):
    """The filters of the ``find`` and ``aggregate`` commands a client sends to one
    collection (PyMongo command monitoring), as in ``runtime/tests/test_readmodel.py``."""

    def __init__(self, collection: str) -> None:
        self.collection = collection
        self.finds: list[dict[str, Any]] = []
        self.aggregates = 0

    def started(self, event: Any) -> None:
        if event.command.get(event.command_name) != self.collection:
            return
        if event.command_name == "find":
            self.finds.append(dict(event.command.get("filter") or {}))
        elif event.command_name == "aggregate":
            self.aggregates += 1

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


@contextlib.asynccontextmanager
async def watched(
    deps: uc.Deps, settings: OverbruggingSettings
) -> AsyncIterator[tuple[uc.Deps, LedgerReads]]:
    """The service's store, read through a client of its own whose ledger reads are seen."""
    reads = LedgerReads("ledger")
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongodb_url, tz_aware=True, event_listeners=[reads]
    )
    db = client[settings.mongodb_database]
    repo = BridgingRepository(
        AggregateStore(db[deps.repo.collection.name]), db["budgets"], db["ledger"]
    )
    try:
        yield replace(deps, repo=repo), reads
    finally:
        await client.close()


def by_bare_id(filters: list[dict[str, Any]]) -> bool:
    return all(list(f) == ["_id"] and isinstance(f["_id"], str) for f in filters)


async def test_an_applications_ledger_is_read_by_bare_id_complete_in_order_once_each(
    make_settings: Callable[..., OverbruggingSettings],
    serve: Any,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """FerretDB 1.24 decodes the whole ledger for a filter by ``application_id``: the
    application lists its entries' ids, and an entry booked but not yet taken off the
    pending list (a crash in between) is found by its id from that list."""
    settings = make_settings(OverbruggingSettings)
    app = create_app(settings)
    await serve(app)
    deps: uc.Deps = app.state.deps
    other, _ = await ready_application(deps, unique, "other")  # entries of another one
    a, year = await ready_application(deps, unique, "ledger")
    for application in (other, a):
        await uc.approve(
            deps, HOLDER, application.id, "approve", Form.ADVANCE, Decimal("100.00"), year, None
        )
        await uc.pay(deps, HOLDER, application.id, f"pay-{application.id}", Decimal("100.00"))
    await uc.determine(deps, HOLDER, a.id, "gm0363", "Wmo 2015 art. 2.3.1")
    await uc.request_recovery(deps, HOLDER, a.id)
    await uc.repay(deps, HOLDER, a.id, f"repay1-{unique}", Decimal("10.00"))
    booked, book = deps.repo.booked, deps.repo.book

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("process killed")

    monkeypatch.setattr(deps.repo, "booked", crash)  # in the ledger, still pending
    with pytest.raises(RuntimeError):
        await uc.repay(deps, HOLDER, a.id, f"repay2-{unique}", Decimal("20.00"))
    monkeypatch.setattr(deps.repo, "booked", booked)

    async def by_field() -> list[Any]:  # the old query, as the truth to compare with
        found = deps.repo.ledger.find({"application_id": a.id}).sort("at", 1)
        return [e["_id"] for e in await found.to_list(None)]

    async with watched(deps, settings) as (seen, reads):
        assert [p.entry_id for p in await deps.repo.pending_bookings(a.id)] == [f"repay2-{unique}"]
        expected = [
            f"commitment:{a.id}",
            f"pay-{a.id}",
            f"repay1-{unique}",
            f"repay2-{unique}",
        ]
        assert await by_field() == expected
        reads.finds.clear()
        entries = await uc.ledger(seen, HOLDER, a.id)
        assert [e["_id"] for e in entries] == expected
        assert [e["kind"] for e in entries] == ["commitment", "payment", "recovery", "recovery"]
        assert by_bare_id(reads.finds)
        assert len(reads.finds) == len(expected)  # each id read once, nothing else
        assert reads.aggregates == 0

        # A booking owed but not in the ledger yet (a crash before it) is not shown...
        monkeypatch.setattr(deps.repo, "book", crash)
        with pytest.raises(RuntimeError):
            await uc.repay(deps, HOLDER, a.id, f"repay3-{unique}", Decimal("30.00"))
        monkeypatch.setattr(deps.repo, "book", book)
        assert len(await deps.repo.pending_bookings(a.id)) == 2
        assert [e["_id"] for e in await uc.ledger(seen, HOLDER, a.id)] == expected
        # ...and is, once, after the sweep booked it and took both off the pending list.
        assert await uc.complete_pending_bookings(deps) >= 2
        assert await deps.repo.pending_bookings(a.id) == []
        reads.finds.clear()
        entries = await uc.ledger(seen, HOLDER, a.id)
        assert [e["_id"] for e in entries] == [*expected, f"repay3-{unique}"]
        assert [e["_id"] for e in entries] == await by_field()
        assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
        assert by_bare_id(reads.finds)
        assert reads.aggregates == 0
        document = await deps.repo.store.get(a.id)
        assert document is not None
        assert sorted(document["_ledger_entries"]) == sorted(
            [f"pay-{a.id}", f"repay1-{unique}", f"repay2-{unique}", f"repay3-{unique}"]
        )
        # The commitment of an approval whose save never happened is shown too.
        b, _ = await ready_application(deps, unique, "lost-save")
        await deps.repo.book(Booking(f"commitment:{b.id}", year, "commitment", 50_00), b.id)
        assert [e["_id"] for e in await uc.ledger(seen, HOLDER, b.id)] == [f"commitment:{b.id}"]


async def test_applications_written_before_the_entry_ids_get_them_at_start_up_once(
    make_settings: Callable[..., OverbruggingSettings], serve: Any, unique: str
) -> None:
    """An application written the old way does not list its ledger entries. The start-up
    migration reads the ledger once and gives it their ids, then marks itself done: a
    later start sends one bare read and no ledger scan."""
    settings = make_settings(OverbruggingSettings)
    app = create_app(settings)
    await serve(app)
    deps: uc.Deps = app.state.deps
    a, year = await ready_application(deps, unique, "old")
    await uc.approve(deps, HOLDER, a.id, "approve", Form.ADVANCE, Decimal("100.00"), year, None)
    await uc.pay(deps, HOLDER, a.id, f"pay-{unique}", Decimal("100.00"))
    # The old form: no list of entry ids, and an entry keyed the way no rule derives
    # (the "book first" version let a losing command leave one).
    await deps.repo.collection.update_one({"_id": a.id}, {"$unset": {"_ledger_entries": ""}})
    await deps.repo.ledger.insert_one(
        {
            "_id": f"old-{unique}",
            "application_id": a.id,
            "year": year,
            "kind": "payment",
            "amount_cents": 100_00,
            "at": datetime.now(UTC),
        }
    )
    expected = [f"commitment:{a.id}", f"pay-{unique}", f"old-{unique}"]
    assert await deps.repo.migrations.find_one({"_id": ENTRIES_MIGRATION}) is not None
    assert [e["_id"] for e in await uc.ledger(deps, HOLDER, a.id)] == [f"commitment:{a.id}"]

    await deps.repo.migrations.delete_one({"_id": ENTRIES_MIGRATION})  # as before the change
    assert await deps.repo.migrate_ledger_entries() >= 1
    document = await deps.repo.store.get(a.id)
    assert document is not None
    assert set(document["_ledger_entries"]) == set(expected)  # the commitment listed too
    assert [e["_id"] for e in await uc.ledger(deps, HOLDER, a.id)] == expected

    async with watched(deps, settings) as (seen, reads):  # the next start
        assert await seen.repo.migrate_ledger_entries() == 0
        assert reads.finds == []
        assert reads.aggregates == 0
    assert [e["_id"] for e in await uc.ledger(deps, HOLDER, a.id)] == expected
