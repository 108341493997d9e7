"""The LET's and the overbruggingsprocedure's forms: which are offered, and the commands
they send (the services validate them)."""

from __future__ import annotations

from starlette.datastructures import FormData

from pmm_console import labels
from pmm_console.views import let, overbrugging
from pmm_contracts.events.bridging import LedgerEntryKind
from pmm_let.domain.model import ALLOWED_TRANSITIONS as LET_TRANSITIONS
from pmm_let.domain.model import Status as LetStatus
from pmm_overbrugging.domain.model import ALLOWED_TRANSITIONS, Status


def test_application_forms_follow_allowed_next_and_the_form_of_the_decision() -> None:
    def offered(status: Status, form: str | None = None) -> list[str]:
        allowed = sorted(s.value for s in ALLOWED_TRANSITIONS[status])
        return overbrugging.application_actions(
            {"status": status.value, "allowed_next": allowed, "form": form}
        )

    assert offered(Status.RECEIVED) == ["conditions", "decision"]
    assert offered(Status.APPROVED, "advance") == ["payment", "release"]
    assert offered(Status.APPROVED, "guarantee") == ["call", "release"]
    assert offered(Status.PAID, "advance") == ["determine", "write_off"]
    assert offered(Status.DETERMINED, "advance") == ["recovery", "write_off"]
    assert offered(Status.RECOVERY_REQUESTED, "advance") == ["repayment", "write_off"]
    assert offered(Status.RECOVERED, "advance") == []


def test_money_forms_carry_a_command_id_and_read_dutch_amounts() -> None:
    body = overbrugging.command(
        "payment", FormData([("command_id", "cmd-12345678"), ("amount", "1.250,50")])
    )
    assert body == {"amount": "1250.50", "command_id": "cmd-12345678"}
    assert overbrugging.command("recovery", FormData([])) is None
    checklist = overbrugging.command(
        "conditions", FormData([("urgency_met", "yes"), ("urgency_note", "acuut")])
    )
    assert checklist == {"urgency": {"met": True, "note": "acuut"}}


def test_the_let_hints_name_only_moves_the_let_allows() -> None:
    moves = {
        "admissibility": {LetStatus.ADMITTED, LetStatus.REFUSED},
        "withdraw": {LetStatus.WITHDRAWN},
        "schedule": {LetStatus.SCHEDULED},
        "attendance": {LetStatus.HELD},
        "outcome": {LetStatus.CONCLUDED},
        "agreement": set(),  # no move: agreements are made while the session is held
    }
    for status in LetStatus:
        for action in labels.ESCALATION_ACTIONS.get(status.value, []):
            assert moves[action] <= LET_TRANSITIONS[status], (status, action)
        if not LET_TRANSITIONS[status]:
            assert status.value not in labels.ESCALATION_ACTIONS


def test_let_commands_as_typed() -> None:
    assert let.command("admissibility", FormData([("admitted", "no")])) == {"admitted": False}
    assert let.command("attendance", FormData([])) == {"present": []}
    assert let.command(
        "schedule", FormData([("session_date", "2026-12-20"), ("executive_ids", "x-1")])
    ) == {"session_date": "2026-12-20", "executive_ids": ["x-1"]}


def test_every_ledger_entry_kind_has_a_dutch_label() -> None:
    assert set(labels.LEDGER_KIND) == {kind.value for kind in LedgerEntryKind}
