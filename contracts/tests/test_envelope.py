import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from pmm_contracts import EventDecodeError, decode_event, encode_event, new_event, source_urn
from pmm_contracts.events import REGISTRY
from pmm_contracts.events.bridging import ApplicationReceived
from pmm_contracts.events.cases import CaseTriaged

SOURCE = source_urn("00000001234567890000", "loket")


def test_source_is_an_nl_gov_urn() -> None:
    assert SOURCE == "urn:nld:oin:00000001234567890000:systeem:loket"
    with pytest.raises(ValueError, match="OIN"):
        source_urn("123", "loket")


def test_round_trip_keeps_type_subject_and_data() -> None:
    data = CaseTriaged(
        case_id="c-1", case_number="LMM-2026-0001", accepted=True, case_due=date(2026, 12, 31)
    )
    event = new_event(data, subject="c-1", source=SOURCE)
    raw = encode_event(event)
    payload = json.loads(raw)
    assert payload["specversion"] == "1.0"
    assert payload["type"] == "nl.maatwerk.case.triaged"
    assert payload["datacontenttype"] == "application/json"
    assert event.key == b"c-1"
    decoded = decode_event(raw, REGISTRY)
    assert decoded.data == data
    assert decoded.id == event.id


def test_money_travels_as_a_decimal_string() -> None:
    data = ApplicationReceived(
        application_id="a-1",
        case_id="c-1",
        case_number="LMM-2026-0001",
        request_id="r-1",
        estimated_amount=Decimal("1234.50"),
    )
    payload = json.loads(encode_event(new_event(data, subject="a-1", source=SOURCE)))
    assert payload["data"]["estimated_amount"] == "1234.50"
    decoded = decode_event(json.dumps(payload), REGISTRY)
    assert decoded.data.estimated_amount == Decimal("1234.50")


def test_derived_event_id_is_kept() -> None:
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, "cause")
    data = CaseTriaged(
        case_id="c", case_number="LMM-2026-0002", accepted=False, decline_reason="duplicate"
    )
    assert new_event(data, subject="c", source=SOURCE, event_id=event_id).id == event_id


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "nl.maatwerk.unknown"}', "unknown event type"),
        (
            json.dumps(
                {
                    "type": "nl.maatwerk.case.triaged",
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": SOURCE,
                    "subject": "c",
                    "time": "2026-01-01T00:00:00Z",
                    "data": {"case_id": "c"},
                }
            ).encode(),
            "case_number",
        ),
    ],
)
def test_decode_errors_say_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(EventDecodeError, match=message):
        decode_event(raw, REGISTRY)


def test_time_must_carry_a_timezone() -> None:
    data = CaseTriaged(case_id="c", case_number="LMM-2026-0003", accepted=True)
    with pytest.raises(ValidationError, match="timezone"):
        new_event(data, subject="c", source=SOURCE, time=datetime(2026, 1, 1))
    assert new_event(data, subject="c", source=SOURCE, time=datetime(2026, 1, 1, tzinfo=UTC))


def test_event_types_carry_no_organisation_or_program_name() -> None:
    for event_type in REGISTRY:
        parts = event_type.split(".")
        assert parts[:2] == ["nl", "maatwerk"]
        assert not {"pmm", "uwv", "svb", "duo", "szw"} & set(parts), event_type
