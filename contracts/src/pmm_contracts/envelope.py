"""CloudEvents 1.0 envelope following the NL GOV profile, in structured JSON mode.

PMM produces structured mode only; it reads both content modes of the CloudEvents Kafka
protocol binding (``decode_message``): structured (the whole event as the value, header
``content-type: application/cloudevents+json``) and binary (the attributes as ``ce_*``
headers, ``content-type`` the data's media type, the value the data), the default of the
CloudEvents SDKs for Java and .NET, with which organisations answer.

The envelope is generic over a typed pydantic ``data`` model. Every data model declares
its reverse-DNS ``EVENT_TYPE`` (``nl.maatwerk.case.submitted``); the Kafka key of an event
is its ``subject``, the id of the aggregate it is about, so one aggregate's events stay in
order on one partition.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CONTENT_TYPE = "application/cloudevents+json"
"""Kafka ``content-type`` header of every PMM event (structured mode)."""

SOURCE_PATTERN = r"^urn:nld:oin:\d{20}:systeem:[a-z0-9][a-z0-9-]*$"
TYPE_PATTERN = r"^nl\.maatwerk(\.[a-z][a-z0-9_-]*)+(\.v[2-9][0-9]*)?$"


class EventData(BaseModel):
    """Base of every event's ``data``.

    Consumers ignore fields they do not know (so adding an optional field never breaks
    them); producers build the model from typed code, so they cannot add stray fields.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", use_enum_values=False)

    EVENT_TYPE: ClassVar[str]
    """Reverse-DNS CloudEvents type; ``.v2`` suffix only for a breaking change."""


DataT = TypeVar("DataT", bound=EventData)


class CloudEvent(BaseModel, Generic[DataT]):
    """A CloudEvents 1.0 envelope (NL GOV profile) around typed ``data``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    source: Annotated[str, Field(pattern=SOURCE_PATTERN)]
    type: Annotated[str, Field(pattern=TYPE_PATTERN)]
    subject: Annotated[str, Field(min_length=1, max_length=200)]
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    data: DataT

    @field_validator("time")
    @classmethod
    def _time_is_aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("time must carry a timezone (RFC 3339)")
        return value

    @property
    def key(self) -> bytes:
        """The Kafka key: the aggregate id."""
        return self.subject.encode()


class EventDecodeError(ValueError):
    """A message that is not a valid PMM CloudEvent: it goes to the dead-letter topic."""


_OIN = re.compile(r"^\d{20}$")


def source_urn(oin: str, service: str) -> str:
    """``urn:nld:oin:<OIN>:systeem:<service>``, the NL GOV profile's source."""
    if not _OIN.match(oin):
        raise ValueError(f"an OIN is 20 digits, got {oin!r}")
    return f"urn:nld:oin:{oin}:systeem:{service}"


def new_event(
    data: DataT,
    *,
    subject: str,
    source: str,
    event_id: uuid.UUID | None = None,
    time: datetime | None = None,
) -> CloudEvent[DataT]:
    """Wrap ``data`` in an envelope. Pass ``event_id`` to derive it (idempotent creation)."""
    envelope: Any = CloudEvent[type(data)]  # type: ignore[misc]
    result: CloudEvent[DataT] = envelope(
        id=event_id or uuid.uuid4(),
        source=source,
        type=data.EVENT_TYPE,
        subject=subject,
        time=time or datetime.now(UTC),
        data=data,
    )
    return result


def encode_event(event: CloudEvent[Any]) -> bytes:
    """Structured-mode JSON bytes of an event (Decimal as string, times RFC 3339)."""
    return event.model_dump_json(exclude_none=True).encode()


def event_to_dict(event: CloudEvent[Any]) -> dict[str, Any]:
    """JSON-compatible dict of an event (for an outbox field in the store)."""
    result: dict[str, Any] = json.loads(encode_event(event))
    return result


def decode_event(
    raw: bytes | str | Mapping[str, Any],
    registry: Mapping[str, type[EventData]],
) -> CloudEvent[Any]:
    """Parse and validate an event whose type is in ``registry``.

    Raises ``EventDecodeError`` naming what is wrong: not JSON, not a CloudEvent, an
    unknown type, or data that fails its model.
    """
    if isinstance(raw, Mapping):
        payload: Any = dict(raw)
    else:
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EventDecodeError(f"not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise EventDecodeError("a CloudEvent in structured mode is a JSON object")
    event_type = payload.get("type")
    model = registry.get(event_type) if isinstance(event_type, str) else None
    if model is None:
        raise EventDecodeError(f"unknown event type {event_type!r}")
    try:
        return CloudEvent[model].model_validate(payload)  # type: ignore[valid-type]
    except ValidationError as exc:
        raise EventDecodeError(f"invalid {event_type}: {_summarise(exc)}") from exc


BINARY_PREFIX = "ce_"
"""Kafka header prefix of a CloudEvents attribute in binary mode (``ce_id``, ``ce_type``)."""

Headers = Mapping[str, bytes | str | None] | Iterable[tuple[str, bytes | str | None]]
"""A record's headers: aiokafka's ``(name, value)`` pairs or a mapping."""


def _header_values(headers: Headers | None) -> dict[str, str]:
    """Header names lower-cased, values as text (a header that is not UTF-8 is refused)."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    found: dict[str, str] = {}
    for name, value in pairs:
        if value is None:
            continue
        try:
            text = value.decode() if isinstance(value, bytes) else str(value)
        except UnicodeDecodeError as exc:
            raise EventDecodeError(f"header {name!r} is not UTF-8") from exc
        found[name.lower()] = text
    return found


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def decode_message(
    value: bytes | None,
    headers: Headers | None,
    registry: Mapping[str, type[EventData]],
) -> CloudEvent[Any]:
    """The CloudEvent of a Kafka record in structured or binary content mode.

    Structured: header ``content-type`` is ``application/cloudevents+json`` (or absent and
    no ``ce_specversion`` header: PMM's own events of before). Binary: a ``ce_specversion``
    header; the attributes are the ``ce_*`` headers, the data's media type is
    ``content-type`` (JSON: ``application/json`` or ``*+json``; absent means JSON) and the
    value is the data. A null value is no event (a tombstone is the caller's business); a
    zero-length or non-JSON value, a batch, or data in another media type raise
    ``EventDecodeError`` like any invalid event.
    """
    if value is None:
        raise EventDecodeError("a null value is a tombstone, not an event")
    found = _header_values(headers)
    content_type = found.get("content-type", "")
    media = _media_type(content_type)
    if media.startswith("application/cloudevents"):
        if media != CONTENT_TYPE:
            raise EventDecodeError(f"content-type {content_type!r}: only single JSON events")
        return decode_event(value, registry)
    attributes = {
        name[len(BINARY_PREFIX) :]: text
        for name, text in found.items()
        if name.startswith(BINARY_PREFIX) and len(name) > len(BINARY_PREFIX)
    }
    if "specversion" not in attributes:
        return decode_event(value, registry)
    if media and media != "application/json" and not media.endswith("+json"):
        raise EventDecodeError(f"binary mode: the data must be JSON, not {content_type!r}")
    try:
        data = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventDecodeError(f"binary mode: the data is not JSON: {exc}") from exc
    return decode_event(
        {**attributes, "datacontenttype": "application/json", "data": data}, registry
    )


def _summarise(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(p) for p in error["loc"])
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)
