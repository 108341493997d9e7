"""The organisations' consumer kit (``pip install pmm-contracts[consumer]``).

An organisation follows its own topic ``pmm.signalen.assigned.<org>`` with its own consumer
group and credentials, hands each signal (``SignalAssigned``) and each reminder
(``FollowUpRequested``) to a handler of its own, and publishes its answers
(``SignalResponse``) on its own topic ``pmm.signalen.responses.<org>``::

    pmm-signals-consumer --org uwv --handler mypackage.signals:handle
    pmm-signals-consumer --org uwv --handler https://intranet.example/pmm-signals
    pmm-signals-consumer --org uwv --handler file:/var/spool/pmm/signals.jsonl
    pmm-signals-consumer answer --org uwv --signal ID --status measure_taken \\
        --explanation "werkinstructie aangepast"

A handler gets the CloudEvent and may return an answer: a ``SignalResponse``, a ``dict``
with at least ``status`` (``signal_id`` and ``organisation`` are filled in), a list of
those, or ``None``. A webhook gets the CloudEvent as JSON in a POST and may answer with
such a JSON object (or ``[]``/204 for none). A file handler appends one CloudEvent per
line and answers nothing (answer later with ``pmm-signals-consumer answer``).

Offsets are committed only after the handler returned and its answers were acknowledged
by the broker (at least once): a handler must tolerate a redelivered event (same ``id``).
The answer's event id is derived from the signal's event id, so a redelivered signal gives
the same answer id, and PMM applies it once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import json
import logging
import os
import signal as os_signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pmm_contracts.connection import Connection
from pmm_contracts.envelope import (
    CONTENT_TYPE,
    CloudEvent,
    EventData,
    EventDecodeError,
    decode_event,
    encode_event,
    new_event,
    source_urn,
)
from pmm_contracts.events.signals import (
    FollowUpRequested,
    ResponseStatus,
    SignalAssigned,
    SignalResponse,
)
from pmm_contracts.topics import signals_assigned_topic, signals_responses_topic

log = logging.getLogger("pmm_contracts.consumer")

INCOMING: dict[str, type[EventData]] = {
    SignalAssigned.EVENT_TYPE: SignalAssigned,
    FollowUpRequested.EVENT_TYPE: FollowUpRequested,
}
PLACEHOLDER_OIN = "00000000000000000000"

__all__ = ["Connection", "SignalConsumer", "default_group", "handler_from", "publish_answer"]


def default_group(org: str) -> str:
    """The organisation's consumer group; its ACLs allow every group with this prefix."""
    return f"{org}.pmm-signals"


Answer = SignalResponse | Mapping[str, Any]
HandlerResult = Answer | Iterable[Answer] | None
Handler = Callable[[CloudEvent[Any]], HandlerResult | Awaitable[HandlerResult]]


def answer_event(
    org: str,
    incoming: CloudEvent[Any],
    answer: Answer,
    *,
    source: str,
    n: int = 0,
) -> CloudEvent[SignalResponse]:
    """The CloudEvent of an answer to ``incoming``; its id is derived from the incoming id."""
    if isinstance(answer, SignalResponse):
        data = answer
    else:
        values = {"signal_id": incoming.data.signal_id, "organisation": org, **dict(answer)}
        data = SignalResponse.model_validate(values)
    if data.organisation != org:
        raise ValueError(f"an answer of {org} cannot speak for {data.organisation}")
    event_id = uuid.uuid5(incoming.id, f"response:{n}:{data.status.value}")
    return new_event(data, subject=data.signal_id, source=source, event_id=event_id)


def _answers(result: HandlerResult) -> list[Answer]:
    if result is None:
        return []
    if isinstance(result, SignalResponse | Mapping):
        return [result]
    return list(result)


# Handlers ---------------------------------------------------------------------------------


def load_callable(spec: str) -> Handler:
    """``package.module:function`` → the function."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"a Python handler is 'module:function', got {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{spec!r} is not callable")
    handler: Handler = target
    return handler


def webhook_handler(url: str, *, headers: Mapping[str, str] | None = None) -> Handler:
    """POST the CloudEvent to ``url``; a JSON answer in the reply is published."""
    import httpx

    client = httpx.AsyncClient(timeout=30.0, headers=dict(headers or {}))

    async def post(event: CloudEvent[Any]) -> HandlerResult:
        reply = await client.post(
            url, content=encode_event(event), headers={"content-type": CONTENT_TYPE}
        )
        reply.raise_for_status()  # an error is retried: the offset is not committed
        if reply.status_code == 204 or not reply.content.strip():
            return None
        body = reply.json()
        if isinstance(body, dict | list):
            return body
        return None

    return post


def jsonl_handler(path: Path) -> Handler:
    """Append each CloudEvent as one JSON line to ``path`` (flushed and synced)."""

    def append(event: CloudEvent[Any]) -> HandlerResult:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(encode_event(event).decode() + "\n")
            out.flush()
            os.fsync(out.fileno())
        return None

    return append


def handler_from(spec: str) -> Handler:
    """A handler from the command line: a URL, ``file:PATH`` / ``*.jsonl``, or ``mod:func``."""
    if spec.startswith(("http://", "https://")):
        return webhook_handler(spec)
    if spec.startswith("file:"):
        return jsonl_handler(Path(spec[len("file:") :]))
    if spec.endswith((".jsonl", ".ndjson")):
        return jsonl_handler(Path(spec))
    return load_callable(spec)


# The consumer -----------------------------------------------------------------------------


@dataclass
class SignalConsumer:
    """Follows ``pmm.signalen.assigned.<org>`` and publishes answers on the org's own topic."""

    org: str
    handler: Handler
    connection: Connection = field(default_factory=Connection)
    group_id: str | None = None
    oin: str = PLACEHOLDER_OIN
    system: str = "signalen-consumer"
    from_beginning: bool = True
    max_attempts: int = 5
    backoff_s: float = 1.0
    received: int = 0
    answered: int = 0

    def __post_init__(self) -> None:
        self.topic = signals_assigned_topic(self.org)
        self.responses_topic = signals_responses_topic(self.org)
        # The broker allows an organisation only groups that begin with default_group(org).
        self.group = self.group_id or default_group(self.org)
        self.source = source_urn(self.oin, self.system)
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def _call(self, event: CloudEvent[Any]) -> HandlerResult:
        result = self.handler(event)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        """Consume until ``stop()``. Each record: handler, answers acked, then commit."""
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        options = self.connection.kwargs()
        consumer = AIOKafkaConsumer(
            self.topic,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if self.from_beginning else "latest",
            **options,
        )
        producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **options)
        await producer.start()
        await consumer.start()
        log.info("following %s as group %s", self.topic, self.group)
        try:
            if ready is not None:
                ready.set()
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=500, max_records=50)
                for tp, records in batch.items():
                    for record in records:
                        done = await self._handle(record.value, producer)
                        if not done:  # gave up for now: rewind, try again next poll
                            consumer.seek(tp, record.offset)
                            break
                        await consumer.commit({tp: record.offset + 1})
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()

    async def _handle(self, value: bytes | None, producer: Any) -> bool:
        if not value:
            return True
        try:
            event = decode_event(value, INCOMING)
        except EventDecodeError as exc:
            log.warning("skipping a message that is not a PMM signal: %s", exc)
            return True
        self.received += 1
        for attempt in range(1, self.max_attempts + 1):
            try:
                result = await self._call(event)
                for n, answer in enumerate(_answers(result)):
                    outgoing = answer_event(self.org, event, answer, source=self.source, n=n)
                    await producer.send_and_wait(
                        self.responses_topic,
                        encode_event(outgoing),
                        key=outgoing.key,
                        headers=[("content-type", CONTENT_TYPE.encode())],
                    )
                    self.answered += 1
                return True
            except (ValidationError, ValueError) as exc:
                log.error("handler answer for %s is invalid, skipped: %s", event.id, exc)
                return True
            except Exception as exc:
                log.warning("handler failed for %s (attempt %d): %r", event.id, attempt, exc)
                if self._stop.is_set():
                    return False
                await asyncio.sleep(self.backoff_s * attempt)
        return False


async def publish_answer(
    org: str,
    answer: SignalResponse,
    *,
    connection: Connection,
    oin: str = PLACEHOLDER_OIN,
    system: str = "signalen-consumer",
) -> CloudEvent[SignalResponse]:
    """Publish one answer on the organisation's response topic (e.g. from a script)."""
    from aiokafka import AIOKafkaProducer

    if answer.organisation != org:
        raise ValueError(f"an answer of {org} cannot speak for {answer.organisation}")
    event = new_event(answer, subject=answer.signal_id, source=source_urn(oin, system))
    producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **connection.kwargs())
    await producer.start()
    try:
        await producer.send_and_wait(
            signals_responses_topic(org),
            encode_event(event),
            key=event.key,
            headers=[("content-type", CONTENT_TYPE.encode())],
        )
    finally:
        await producer.stop()
    return event


# CLI --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pmm-signals-consumer",
        description="Follow your organisation's PMM signal topic and publish your answers.",
    )
    parser.add_argument("command", nargs="?", choices=["run", "answer"], default="run")
    env = os.environ.get
    parser.add_argument("--org", default=env("PMM_ORG"), help="your organisation code")
    parser.add_argument("--bootstrap", default=env("PMM_KAFKA_BOOTSTRAP"))
    parser.add_argument("--group", default=env("PMM_CONSUMER_GROUP"), help="consumer group id")
    parser.add_argument(
        "--handler",
        default=env("PMM_HANDLER"),
        help="module:function, an http(s) webhook URL, or file:PATH.jsonl",
    )
    parser.add_argument("--oin", default=env("PMM_OIN", PLACEHOLDER_OIN), help="your OIN")
    parser.add_argument(
        "--properties",
        default=env("PMM_KAFKA_CLIENT_PROPERTIES"),
        help="client.properties from PMM (bootstrap.servers, security.protocol, sasl.*, "
        "ssl.ca.location): kcat's format; the other connection options override it",
    )
    parser.add_argument("--security-protocol", default=env("PMM_KAFKA_SECURITY_PROTOCOL"))
    parser.add_argument("--sasl-mechanism", default=env("PMM_KAFKA_SASL_MECHANISM"))
    parser.add_argument("--sasl-username", default=env("PMM_KAFKA_SASL_USERNAME"))
    parser.add_argument(
        "--sasl-password",
        default=env("PMM_KAFKA_SASL_PASSWORD"),
        help="prefer the environment variable PMM_KAFKA_SASL_PASSWORD",
    )
    parser.add_argument("--ssl-cafile", default=env("PMM_KAFKA_SSL_CAFILE"))
    parser.add_argument("--latest", action="store_true", help="new group starts at the end")
    parser.add_argument("--signal", help="answer: the signal id")
    parser.add_argument("--status", choices=[s.value for s in ResponseStatus])
    parser.add_argument("--explanation", default=None)
    parser.add_argument("--forward-to", default=None)
    return parser


def connection_from_args(args: argparse.Namespace) -> Connection:
    """The connection of the command line: a properties file, then the single options."""
    base = Connection.from_properties(args.properties) if args.properties else Connection()
    overrides = {
        "bootstrap": args.bootstrap,
        "security_protocol": args.security_protocol,
        "sasl_mechanism": args.sasl_mechanism,
        "sasl_username": args.sasl_username,
        "sasl_password": args.sasl_password,
        "ssl_cafile": args.ssl_cafile,
    }
    values = {key: value for key, value in overrides.items() if value}
    if args.security_protocol is None and args.sasl_username and not args.properties:
        values["security_protocol"] = "SASL_SSL" if args.ssl_cafile else "SASL_PLAINTEXT"
    return replace(base, **values, client_id=f"{args.org}-pmm-signals")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not args.org:
        print("--org (or PMM_ORG) is required", file=sys.stderr)
        return 2
    connection = connection_from_args(args)
    if args.command == "answer":
        if not (args.signal and args.status):
            print("answer needs --signal and --status", file=sys.stderr)
            return 2
        try:
            answer = SignalResponse(
                signal_id=args.signal,
                organisation=args.org,
                status=ResponseStatus(args.status),
                explanation=args.explanation,
                forward_to=args.forward_to,
            )
        except ValidationError as exc:
            print(f"invalid answer: {exc}", file=sys.stderr)
            return 2
        event = asyncio.run(publish_answer(args.org, answer, connection=connection, oin=args.oin))
        print(json.dumps({"published": str(event.id), "topic": signals_responses_topic(args.org)}))
        return 0
    if not args.handler:
        print("--handler (or PMM_HANDLER) is required", file=sys.stderr)
        return 2
    consumer = SignalConsumer(
        org=args.org,
        handler=handler_from(args.handler),
        connection=connection,
        group_id=args.group,
        oin=args.oin,
        from_beginning=not args.latest,
    )

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (os_signal.SIGTERM, os_signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, consumer.stop)
        await consumer.run()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
