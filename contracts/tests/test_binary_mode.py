"""Both content modes of the CloudEvents Kafka protocol binding (``decode_message``)."""

from __future__ import annotations

import json
import uuid

import pytest

from pmm_contracts import EventDecodeError, encode_event, new_event, source_urn
from pmm_contracts.envelope import CONTENT_TYPE, decode_message
from pmm_contracts.events import REGISTRY
from pmm_contracts.events.signals import ResponseStatus, SignalResponse

SOURCE = source_urn("00000009876543210000", "java-sample")
ANSWER = SignalResponse(signal_id="s-1", organisation="uwv", status=ResponseStatus.RECEIVED)


def binary_headers(**overrides: str | None) -> list[tuple[str, bytes]]:
    """The headers the CloudEvents Java SDK's serializer writes in binary mode."""
    values: dict[str, str | None] = {
        "ce_specversion": "1.0",
        "ce_id": "3f0c6a0e-8a59-4c59-9d59-0c2b8f1d2e11",
        "ce_source": SOURCE,
        "ce_type": SignalResponse.EVENT_TYPE,
        "ce_subject": "s-1",
        "ce_time": "2026-11-23T10:00:00Z",
        "content-type": "application/json",
    }
    values.update(overrides)
    return [(k, v.encode()) for k, v in values.items() if v is not None]


def data_bytes() -> bytes:
    return json.dumps(ANSWER.model_dump(mode="json", exclude_none=True)).encode()


def test_binary_mode_takes_the_attributes_from_the_headers_and_the_data_from_the_value() -> None:
    event = decode_message(data_bytes(), binary_headers(ce_traceparent="00-ab-cd-01"), REGISTRY)
    assert event.id == uuid.UUID("3f0c6a0e-8a59-4c59-9d59-0c2b8f1d2e11")
    assert event.source == SOURCE
    assert event.subject == "s-1"
    assert event.type == SignalResponse.EVENT_TYPE
    assert event.data == ANSWER
    assert event.time.isoformat() == "2026-11-23T10:00:00+00:00"


def test_binary_mode_accepts_a_charset_and_a_json_suffix_and_mixed_case_header_names() -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.pmm+json", None):
        headers = [(k.upper() if k.startswith("ce_") else k, v) for k, v in binary_headers()]
        headers = [(k, v) for k, v in headers if k != "content-type"]
        if content_type is not None:
            headers.append(("content-type", content_type.encode()))
        assert decode_message(data_bytes(), headers, REGISTRY).data == ANSWER


def test_structured_mode_with_or_without_its_content_type_header() -> None:
    event = new_event(ANSWER, subject="s-1", source=SOURCE)
    raw = encode_event(event)
    assert decode_message(raw, [("content-type", CONTENT_TYPE.encode())], REGISTRY) == event
    assert decode_message(raw, {"content-type": CONTENT_TYPE + "; charset=utf-8"}, REGISTRY).id == (
        event.id
    )
    assert decode_message(raw, None, REGISTRY) == event  # no headers: structured
    # The structured content type wins over stray ce_ headers.
    headers = [("content-type", CONTENT_TYPE.encode()), ("ce_specversion", b"1.0")]
    assert decode_message(raw, headers, REGISTRY) == event


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (b"", binary_headers(), "not JSON"),
        (b"{not json", binary_headers(), "not JSON"),
        (b"<signal/>", binary_headers(**{"content-type": "application/xml"}), "must be JSON"),
        (b"{}", binary_headers(), "invalid"),  # data without signal_id and status
        (None, binary_headers(), "tombstone"),
        (b"[]", [("content-type", b"application/cloudevents-batch+json")], "single"),
        (b"", [("content-type", CONTENT_TYPE.encode())], "not JSON"),
    ],
)
def test_what_is_not_a_valid_event_in_either_mode_is_refused(
    value: bytes | None, headers: list[tuple[str, bytes]], reason: str
) -> None:
    with pytest.raises(EventDecodeError, match=reason):
        decode_message(value, headers, REGISTRY)


def test_binary_mode_needs_the_required_attributes_and_a_known_type() -> None:
    with pytest.raises(EventDecodeError, match="id"):
        decode_message(data_bytes(), binary_headers(ce_id=None), REGISTRY)
    with pytest.raises(EventDecodeError, match="unknown event type"):
        decode_message(data_bytes(), binary_headers(ce_type="nl.maatwerk.other"), REGISTRY)
    with pytest.raises(EventDecodeError, match="time"):
        decode_message(data_bytes(), binary_headers(ce_time="yesterday"), REGISTRY)
    with pytest.raises(EventDecodeError, match="UTF-8"):
        decode_message(data_bytes(), [*binary_headers(), ("ce_subject", b"\xff\xfe")], REGISTRY)
