"""The AsyncAPI 3.0 document of a service, generated from what it declared in code.

Every topic a service produces (``Platform.publisher``, ``Platform.document``), consumes
(``Platform.subscribe``) or dead-letters into is a channel; each event type on it is a
message whose payload is the JSON Schema of its CloudEvent (the same schema as
``contracts/schemas/``). A topic with several event types lists them all. Topics named per
organisation appear once, with ``{org}`` in their address.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pmm_contracts.envelope import CONTENT_TYPE, CloudEvent, EventData
from pmm_contracts.topics import dead_letter_topic

Action = Literal["send", "receive"]

DEAD_LETTER = "DeadLetter"


@dataclass
class Channel:
    address: str
    action: Action
    description: str = ""
    events: list[type[EventData]] = field(default_factory=list)
    dead_letters: bool = False


class Catalogue:
    """The channels one process declared (kept by its ``Platform``)."""

    def __init__(self) -> None:
        self.channels: dict[tuple[str, Action], Channel] = {}

    def add(
        self,
        address: str,
        action: Action,
        *,
        events: Sequence[type[EventData]] = (),
        description: str = "",
        dead_letters: bool = False,
    ) -> None:
        channel = self.channels.setdefault(
            (address, action), Channel(address, action, description, dead_letters=dead_letters)
        )
        channel.description = channel.description or description
        for event in events:
            if event not in channel.events:
                channel.events.append(event)

    def consumed(self, address: str, events: Sequence[type[EventData]], description: str) -> None:
        self.add(address, "receive", events=events, description=description)
        self.add(
            dead_letter_topic(address),
            "send",
            description=f"Messages from {address} that could not be decoded or handled, with "
            "the error and their origin in x-dlq-* headers.",
            dead_letters=True,
        )

    def addresses(self, action: Action) -> set[str]:
        return {address for address, kind in self.channels if kind == action}


def _channel_id(address: str, action: Action) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", address).strip("-") + f":{action}"


def document(
    catalogue: Catalogue, *, title: str, version: str, description: str, bootstrap: str
) -> dict[str, Any]:
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for channel in catalogue.channels.values():
        names: list[str] = []
        if channel.dead_letters:
            names.append(DEAD_LETTER)
            messages.setdefault(DEAD_LETTER, _dead_letter_message())
        for event in channel.events:
            name = event.EVENT_TYPE
            names.append(name)
            if name not in messages:
                messages[name] = _message(event, schemas)
        channel_id = _channel_id(channel.address, channel.action)
        channels[channel_id] = {
            "address": channel.address,
            "description": channel.description,
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
            "bindings": {"kafka": {"topic": channel.address, "bindingVersion": "0.5.0"}},
        }
        operations[channel_id] = {
            "action": channel.action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{n}"} for n in names],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": title, "version": version, "description": description},
        "defaultContentType": CONTENT_TYPE,
        "servers": {"development": {"host": bootstrap, "protocol": "kafka"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _message(event: type[EventData], schemas: dict[str, Any]) -> dict[str, Any]:
    envelope: Any = CloudEvent[event]  # type: ignore[valid-type]
    schema: dict[str, Any] = envelope.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schema_name = event.EVENT_TYPE
    schemas[schema_name] = schema
    return {
        "name": event.EVENT_TYPE,
        "title": event.__name__,
        "summary": (event.__doc__ or "").strip().splitlines()[0] if event.__doc__ else "",
        "contentType": CONTENT_TYPE,
        "payload": {"$ref": f"#/components/schemas/{schema_name}"},
    }


def _dead_letter_message() -> dict[str, Any]:
    header = {"type": "string"}
    return {
        "name": DEAD_LETTER,
        "title": "Dead letter",
        "summary": "The original message bytes, unchanged, with why and where from",
        "payload": {"type": "string", "description": "the original value, as it was consumed"},
        "headers": {
            "type": "object",
            "properties": {
                name: header
                for name in (
                    "x-dlq-error",
                    "x-dlq-error-class",
                    "x-dlq-original-topic",
                    "x-dlq-original-partition",
                    "x-dlq-original-offset",
                    "x-dlq-consumer-group",
                    "x-dlq-attempts",
                )
            },
        },
    }
