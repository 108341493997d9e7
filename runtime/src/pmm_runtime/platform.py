"""The per-process wiring every service shares; ``create_app(settings)`` builds one.

A ``Platform`` owns the broker, the store client, the outbox relay, metrics and the token
verifier of one process (no module globals: every test gets a fresh one). Its FastAPI
lifespan starts them in order and stops them gracefully on SIGTERM: stop consuming and
finish in-flight handlers (their offsets are committed), flush the outbox, close.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import ChainMap
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.publisher.usecase import DefaultPublisher
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from pmm_contracts.envelope import CloudEvent, EventData
from pmm_contracts.events import REGISTRY
from pmm_runtime import kafka_security
from pmm_runtime.asyncapi import Action, Catalogue
from pmm_runtime.asyncapi import document as asyncapi_document
from pmm_runtime.auth import TokenVerifier
from pmm_runtime.broker import (
    DeadLetters,
    EventHandler,
    RetryPolicy,
    TombstoneHandler,
    TombstonePublisher,
    create_broker,
    send_fn,
    subscribe_events,
)
from pmm_runtime.changes import Changes
from pmm_runtime.docs import install_offline_docs
from pmm_runtime.errors import catalogue
from pmm_runtime.http import PROBLEM_JSON, Problem, install_health_routes, install_problem_handlers
from pmm_runtime.kafka_security import aiokafka_kwargs
from pmm_runtime.lag import LagMonitor
from pmm_runtime.lease import LEASE_COLLECTION, Lease, instance_id
from pmm_runtime.logging import configure_logging, get_logger
from pmm_runtime.metrics import Metrics
from pmm_runtime.mongo import Document, create_client, ping
from pmm_runtime.outbox import PENDING_COLLECTION, AggregateStore, OutboxRelay, PendingOutbox
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.telemetry import RequestObserver, Telemetry
from pmm_runtime.writes import Writes

log = get_logger(__name__)

Hook = Callable[[], Awaitable[None]]
Handlers = Mapping[type[EventData], Callable[[CloudEvent[Any]], Awaitable[object]]]
API_VERSION = "1.0.0"
"""The HTTP API version of every service (``API-Version`` header, NL API Design Rules)."""
BackgroundTask = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class Platform:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        registry: Mapping[str, type[EventData]] = REGISTRY,
        configure_logs: bool = True,
    ) -> None:
        if configure_logs:
            configure_logging(settings.log_level, settings.log_json)
        self.settings = settings
        self.registry = registry
        self.metrics = Metrics(settings.service_name)
        self.telemetry = Telemetry(settings)
        self.retry = RetryPolicy.from_settings(settings)
        self.broker: KafkaBroker = create_broker(
            settings,
            middlewares=[
                self.telemetry.broker_middleware(),
                KafkaPrometheusMiddleware(
                    registry=self.metrics.registry, app_name=f"pmm-{settings.service_name}"
                ),
            ],
        )
        self.dead_letters = DeadLetters(self.broker)
        self.mongo = create_client(
            settings.mongodb_url,
            app_name=f"pmm-{settings.service_name}",
            listeners=[self.telemetry.mongo_listener()],
        )
        self.db: AsyncDatabase[Document] = self.mongo[settings.database_name]
        self.publishers: dict[str, DefaultPublisher] = {}
        self.tombstones = TombstonePublisher(
            kafka_security.connection(settings), f"pmm-{settings.service_name}"
        )
        self.instance = instance_id()
        self.writes = Writes(  # conditional writes by the store's strategy (decision 0008)
            self.db, holder=self.instance, strategy=settings.store_write_strategy
        )
        self.pending = PendingOutbox(self.db[PENDING_COLLECTION], self.writes)
        self.relay = OutboxRelay(
            send_fn(self.broker, self.publishers, self.tombstones),
            [],
            pending=self.pending,
            metrics=self.metrics,
            poll_interval_s=settings.outbox_poll_interval_s,
            sweep_interval_s=settings.outbox_sweep_interval_s,
        )
        self.changes = Changes(source=settings.source, notify=self.relay.notify)
        self.catalogue = Catalogue()
        self.groups: set[str] = set()
        self.lag = LagMonitor(
            lambda: aiokafka_kwargs(self.settings, client_id=f"pmm-{settings.service_name}-lag"),
            lambda: sorted(self.groups),
            metrics=self.metrics,
            threshold=settings.consumer_lag_threshold,
            interval_s=settings.consumer_lag_interval_s,
        )
        self._startup: list[Hook] = []
        self._background: list[BackgroundTask] = []
        self._readiness: dict[str, Callable[[], Awaitable[bool]]] = {}

    # Declarations ---------------------------------------------------------------------------

    def publisher(
        self, topic: str, *, description: str, events: Sequence[type[EventData]] = ()
    ) -> DefaultPublisher:
        """Declare an outgoing topic once, with its contract, so AsyncAPI lists it."""
        self.catalogue.add(topic, "send", events=events, description=description)
        if topic not in self.publishers:
            schema: Any = None
            if len(events) == 1:
                schema = CloudEvent[events[0]]  # type: ignore[valid-type]
            self.publishers[topic] = self.broker.publisher(
                topic, title=f"{topic}:publish", description=description, schema=schema
            )
        return self.publishers[topic]

    def store(self, collection: str) -> AggregateStore:
        """An aggregate collection whose outbox this process relays."""
        coll: AsyncCollection[Document] = self.db[collection]
        self.relay.add_collection(coll)
        return AggregateStore(coll, self.pending, self.writes)

    def subscribe(
        self,
        *topics: str,
        handlers: Handlers | None = None,
        handler: EventHandler | None = None,
        purpose: str = "main",
        pattern: str | None = None,
        on_tombstone: TombstoneHandler | None = None,
        description: str | None = None,
        address: str | None = None,
        events: Sequence[type[EventData]] = (),
    ) -> None:
        """Consume ``topics`` with the platform's rules; each event goes to the handler of
        its data type in ``handlers`` (events of other types are acknowledged and skipped).
        ``handler`` takes every event instead (a generic consumer; name its ``events`` for
        the AsyncAPI document). ``address`` documents a ``pattern`` subscription (e.g.
        ``pmm.signalen.responses.{org}``)."""
        if (handlers is None) == (handler is None):
            raise TypeError("give exactly one of handlers= or handler=")
        if handlers is not None:
            handler = dispatch(handlers)
            events = list(handlers)
        assert handler is not None
        documented = list(topics) or [address or pattern or ""]
        for topic in documented:
            self.catalogue.consumed(topic, events, description or "")
        if not self.groups:
            self.background(self.lag.run)
            self.readiness("consumer_lag", self.lag.ready)
        self.groups.add(self.settings.group_id(purpose))
        subscribe_events(
            self.broker,
            *topics,
            group_id=self.settings.group_id(purpose),
            registry=self.registry,
            handler=handler,
            dead_letters=self.dead_letters,
            retry=self.retry,
            metrics=self.metrics,
            on_tombstone=on_tombstone,
            pattern=pattern,
            title=f"{self.settings.service_name}.{purpose}:subscribe",
            description=description,
            batch_size=self.settings.consumer_batch_size,
            traced=self.telemetry.consuming,
        )

    def document(
        self,
        address: str,
        *,
        action: Action,
        events: Sequence[type[EventData]],
        description: str,
    ) -> None:
        """List a topic in the AsyncAPI document that no declared publisher or subscriber
        names (e.g. the per-organisation ``pmm.signalen.assigned.{org}``)."""
        self.catalogue.add(address, action, events=events, description=description)
        if action == "receive":
            self.catalogue.consumed(address, events, description)

    def readiness(self, name: str, check: Callable[[], Awaitable[bool]]) -> None:
        """Another condition of ``/readyz`` besides the broker and the store (e.g. a cache
        that must be warm before the replica takes traffic)."""
        self._readiness[name] = check

    def on_startup(self, hook: Hook) -> None:
        self._startup.append(hook)

    def background(self, task: BackgroundTask) -> None:
        """A long-running task (e.g. a deadline scan) that returns when the event is set."""
        self._background.append(task)

    def periodic(self, name: str, interval_s: float, job: Callable[[], Awaitable[object]]) -> None:
        """Run ``job`` now and then every ``interval_s`` until shutdown; a failure is logged
        and retried at the next round (e.g. deadline scans, reminders, retention purges).

        With several replicas of a service, a round runs only in the replica that holds the
        job's lease (``pmm_runtime.lease``); the others skip it. The holder renews the lease
        every round and releases it at shutdown; a crashed holder's lease expires after two
        rounds (and at least a minute)."""
        lease = Lease(
            self.db[LEASE_COLLECTION],
            f"{self.settings.service_name}:{name}",
            holder=self.instance,
            ttl_s=max(2 * interval_s, 60.0),
            writes=self.writes,
        )

        async def loop(stop: asyncio.Event) -> None:
            while not stop.is_set():
                try:
                    if await lease.acquire() is not None:
                        result = await job()
                        if result:
                            log.info("periodic job did work", job=name, result=result)
                except Exception as exc:
                    log.warning("periodic job failed", job=name, error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval_s)
            with contextlib.suppress(Exception):
                await lease.release()

        loop.__name__ = name
        self._background.append(loop)

    # Running ---------------------------------------------------------------------------------

    async def start(self) -> None:
        for hook in self._startup:
            await hook()
        await self.broker.start()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start everything; on exit stop consuming, flush the outbox and close."""
        await self.start()
        stop = asyncio.Event()
        relay_task = asyncio.create_task(self.relay.run(), name="outbox-relay")
        tasks = [
            asyncio.create_task(task(stop), name=getattr(task, "__name__", "task"))
            for task in self._background
        ]
        log.info("service started", service=self.settings.service_name)
        try:
            yield
        finally:
            log.info("service stopping", service=self.settings.service_name)
            stop.set()
            for subscriber in self.broker.subscribers:
                with contextlib.suppress(Exception):
                    await subscriber.stop()  # finishes the in-flight handler and commits
            self.relay.stop()
            await asyncio.wait_for(relay_task, timeout=self.settings.shutdown_grace_s)
            if tasks:
                await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_s)
            with contextlib.suppress(Exception):
                await self.tombstones.close()
            with contextlib.suppress(Exception):
                await self.broker.stop()
            await self.mongo.close()
            log.info("service stopped", service=self.settings.service_name)
            self.telemetry.shutdown()

    async def broker_ready(self) -> bool:
        try:
            return bool(await self.broker.ping(timeout=3.0))
        except Exception:
            return False

    async def store_ready(self) -> bool:
        return await ping(self.db)

    def asyncapi(self, *, title: str, description: str) -> dict[str, Any]:
        """The AsyncAPI 3.0 document of every topic this process declared."""
        return asyncapi_document(
            self.catalogue,
            title=title,
            version=API_VERSION,
            description=description,
            bootstrap=self.settings.kafka_bootstrap,
        )

    def http_app(
        self,
        *,
        title: str,
        description: str,
        routers: Sequence[APIRouter] = (),
        error_statuses: Mapping[type[Exception], int] | None = None,
    ) -> FastAPI:
        platform = self

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with platform.running():
                yield

        app = FastAPI(title=title, description=description, version=API_VERSION, lifespan=lifespan)
        install_offline_docs(app)  # Swagger UI from local assets: no CDN
        app.add_middleware(RequestObserver, metrics=self.metrics)  # access log, HTTP metrics
        self.telemetry.instrument(app)  # a server span per request (outermost)

        @app.middleware("http")
        async def api_version(request: Any, call_next: Any) -> Any:
            response = await call_next(request)
            response.headers["API-Version"] = API_VERSION
            return response

        app.state.platform = self
        app.state.token_verifier = TokenVerifier(
            self.settings.public_key_pem(),
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
        )
        install_problem_handlers(app, error_statuses)
        install_health_routes(
            app,
            ChainMap({"broker": self.broker_ready, "store": self.store_ready}, self._readiness),
            self.metrics.render,
        )

        @app.get("/asyncapi.json", tags=["operations"], summary="AsyncAPI of this service")
        async def asyncapi() -> dict[str, Any]:
            return platform.asyncapi(title=title, description=description)

        @app.get(
            "/v1/problems",
            tags=["operations"],
            summary="The problem types this API answers with",
        )
        async def problems() -> list[dict[str, Any]]:
            return catalogue()

        for router in routers:
            app.include_router(router, prefix="/v1")
            # The unversioned paths of before /v1 keep working, outside the documentation.
            app.include_router(router, include_in_schema=False)
        _declare_problem_schema(app)
        return app


def dispatch(handlers: Handlers) -> EventHandler:
    """One handler that calls the handler of the event's data type (no ``isinstance``
    chains in services); an event type without a handler is acknowledged and skipped."""
    table = dict(handlers)

    async def handle(event: CloudEvent[Any]) -> None:
        target = table.get(type(event.data))
        if target is not None:
            await target(event)

    return handle


def _declare_problem_schema(app: FastAPI) -> None:
    """Put the ``Problem`` schema in the OpenAPI components (the routes' error answers
    refer to it as ``application/problem+json``)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("Problem", Problem.model_json_schema())
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                if "operations" not in operation.get("tags", []):
                    responses.setdefault("401", {"description": "no valid bearer token"})
                    responses.setdefault("503", {"description": "a dependency is not reachable"})
                for status, answer in responses.items():
                    if status.startswith(("4", "5")):
                        answer["content"] = {
                            PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
