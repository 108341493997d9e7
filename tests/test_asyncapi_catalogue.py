"""Every service's AsyncAPI document lists every topic the topic catalogue says it produces
and consumes, with a payload schema per event type, and the dead-letter topics it writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pmm_contracts.topics import CATALOGUE, dead_letter_topic
from pmm_let.app import create_app as let_app
from pmm_let.settings import LetSettings
from pmm_loket.app import create_app as loket_app
from pmm_loket.settings import LoketSettings
from pmm_overbrugging.app import create_app as overbrugging_app
from pmm_overbrugging.settings import OverbruggingSettings
from pmm_register.app import create_app as register_app
from pmm_register.settings import RegisterSettings
from pmm_signalen.app import create_app as signalen_app
from pmm_signalen.settings import SignalenSettings

SERVICES: dict[str, tuple[Callable[[Any], Any], type[Any]]] = {
    "register": (register_app, RegisterSettings),
    "loket": (loket_app, LoketSettings),
    "let": (let_app, LetSettings),
    "overbrugging": (overbrugging_app, OverbruggingSettings),
    "signalen": (signalen_app, SignalenSettings),
}
ORG_TOPICS = {
    "signalen": {
        ("pmm.signalen.assigned.{org}", "send"),
        ("pmm.signalen.responses.{org}", "receive"),
        ("pmm.signalen.responses.{org}.dlq", "send"),
    }
}


def channels(document: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for channel_id, channel in document["channels"].items():
        action = document["operations"][channel_id]["action"]
        found[(channel["address"], action)] = set(channel["messages"])
    return found


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_asyncapi_document_matches_the_topic_catalogue(
    service: str, make_settings: Callable[..., Any]
) -> None:
    factory, settings_class = SERVICES[service]
    app = factory(make_settings(settings_class))
    document = app.state.platform.asyncapi(title=service, description="-")
    found = channels(document)
    for spec in CATALOGUE:
        if spec.producer == service:
            assert (spec.name, "send") in found, spec.name
            assert set(spec.event_types) <= found[(spec.name, "send")], spec.name
        if service in spec.consumers:
            assert (spec.name, "receive") in found, spec.name
            assert found[(spec.name, "receive")], f"{spec.name}: no event type listed"
            assert (dead_letter_topic(spec.name), "send") in found
    assert ORG_TOPICS.get(service, set()) <= set(found)
    messages = document["components"]["messages"]
    schemas = document["components"]["schemas"]
    for names in found.values():
        for name in names:
            payload = messages[name]["payload"]
            if "$ref" in payload:  # a CloudEvent: its schema names the event type
                schema = schemas[payload["$ref"].rsplit("/", 1)[-1]]
                assert "data" in schema["properties"]
