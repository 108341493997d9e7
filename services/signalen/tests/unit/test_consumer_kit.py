"""The consumer kit's pure parts: answers, handlers from the command line, and the topic
pattern the service follows."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from pmm_contracts import new_event
from pmm_contracts.consumer import (
    answer_event,
    handler_from,
    jsonl_handler,
    load_callable,
    main,
    webhook_handler,
)
from pmm_contracts.events.cases import Bottleneck
from pmm_contracts.events.signals import ResponseStatus, SignalAssigned, SignalResponse
from pmm_contracts.topics import (
    SIGNALS_RESPONSES_PATTERN,
    dead_letter_topic,
    signals_assigned_topic,
    signals_responses_topic,
)
from pmm_contracts.vocabulary import BottleneckType, LearningOrder

SOURCE = "urn:nld:oin:00000000000000000000:systeem:signalen-consumer"


def incoming() -> object:
    data = SignalAssigned(
        signal_id="s-1",
        organisation="uwv",
        order=LearningOrder.THIRD,
        bottleneck=Bottleneck(type=BottleneckType.ICT),
        description="the link between two systems fails for households that move",
        respond_by=date(2027, 1, 1),
    )
    return new_event(data, subject="s-1", source="urn:nld:oin:00000001234567890000:systeem:x")


def test_an_answer_fills_in_the_signal_and_derives_its_id() -> None:
    event = incoming()
    first = answer_event("uwv", event, {"status": "received"}, source=SOURCE)  # type: ignore[arg-type]
    again = answer_event("uwv", event, {"status": "received"}, source=SOURCE)  # type: ignore[arg-type]
    assert first.data == SignalResponse(
        signal_id="s-1", organisation="uwv", status=ResponseStatus.RECEIVED
    )
    assert first.id == again.id  # a redelivered signal gives the same answer id
    other = answer_event("uwv", event, {"status": "in_progress"}, source=SOURCE)  # type: ignore[arg-type]
    assert other.id != first.id
    assert first.subject == "s-1"


def test_an_answer_cannot_speak_for_another_organisation_or_hold_a_bsn() -> None:
    event = incoming()
    with pytest.raises(ValueError, match="cannot speak for"):
        answer_event("uwv", event, {"status": "received", "organisation": "svb"}, source=SOURCE)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        answer_event(
            "uwv",
            event,  # type: ignore[arg-type]
            {"status": "no_action", "explanation": "bsn 123456782"},
            source=SOURCE,
        )


class Hook:
    """The organisation's own HTTP endpoint (outside the platform): a real local server
    that records each POST and answers with the next prepared reply."""

    def __init__(self) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.replies: list[tuple[int, bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                hook.received.append((self.headers["content-type"], self.rfile.read(length)))
                status, body = hook.replies.pop(0)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/signals"


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    thread = threading.Thread(target=h.server.serve_forever, daemon=True)
    thread.start()
    yield h
    h.server.shutdown()
    h.server.server_close()


async def test_a_webhook_gets_the_cloudevent_and_its_answer_is_returned(hook: Hook) -> None:
    event = incoming()
    post = webhook_handler(hook.url, headers={"authorization": "Bearer ours"})
    hook.replies += [
        (200, b'{"status": "received"}'),
        (204, b""),
        (500, b'{"error": "down"}'),
    ]
    assert await post(event) == {"status": "received"}  # type: ignore[arg-type, misc]
    assert await post(event) is None  # type: ignore[arg-type, misc]
    with pytest.raises(httpx.HTTPStatusError):  # not committed: the signal comes again
        await post(event)  # type: ignore[arg-type, misc]
    content_type, body = hook.received[0]
    assert content_type == "application/cloudevents+json"
    sent = json.loads(body)
    assert sent["type"] == "nl.maatwerk.signal.assigned"
    assert sent["data"]["signal_id"] == "s-1"
    assert len(hook.received) == 3


def test_handlers_from_the_command_line(tmp_path: Path) -> None:
    assert callable(handler_from("https://example.org/hook"))
    assert load_callable("json:dumps") is json.dumps
    with pytest.raises(ValueError, match="module:function"):
        load_callable("json")
    path = tmp_path / "out" / "signals.jsonl"
    handler = jsonl_handler(path)
    event = incoming()
    assert handler(event) is None  # type: ignore[arg-type]
    assert handler(event) is None  # type: ignore[arg-type]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["data"]["signal_id"] for line in lines] == ["s-1", "s-1"]


def test_the_cli_needs_an_org() -> None:
    assert main(["--handler", "json:dumps"]) == 2
    assert main(["answer", "--org", "uwv"]) == 2


def test_the_response_pattern_matches_response_topics_only() -> None:
    pattern = re.compile(SIGNALS_RESPONSES_PATTERN)
    assert pattern.match(signals_responses_topic("uwv"))
    assert not pattern.match(dead_letter_topic(signals_responses_topic("uwv")))
    assert not pattern.match(signals_assigned_topic("uwv"))
    assert uuid.UUID(str(incoming().id))  # type: ignore[attr-defined]
