"""Consumer lag of a process's consumer groups: a metric and a readiness detail.

Every ``consumer_lag_interval_s`` the committed offsets of each group this process consumes
with are compared with the end offsets of their partitions (a plain admin client and a
consumer without a group: nothing is joined or committed). ``pmm_consumer_lag{group,
topic}`` exports the sum per topic; ``/readyz`` reports ``consumer_lag: failing`` while
any group lags more than ``consumer_lag_threshold`` messages, so an operator (or KEDA)
sees a backlog before dead-lettering waits behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from pmm_runtime.logging import get_logger
from pmm_runtime.metrics import Metrics

log = get_logger(__name__)


class LagMonitor:
    def __init__(
        self,
        client_kwargs: Callable[[], dict[str, Any]],
        groups: Callable[[], Iterable[str]],
        *,
        metrics: Metrics,
        threshold: int,
        interval_s: float,
    ) -> None:
        self._client_kwargs = client_kwargs
        self._groups = groups
        self._metrics = metrics
        self._threshold = threshold
        self._interval_s = interval_s
        self.lag: dict[str, dict[str, int]] = {}  # group -> topic -> lag

    async def measure(self) -> dict[str, dict[str, int]]:
        kwargs = self._client_kwargs()
        admin = AIOKafkaAdminClient(**kwargs)
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **kwargs)
        await admin.start()
        await consumer.start()
        try:
            result: dict[str, dict[str, int]] = {}
            for group in self._groups():
                committed = await admin.list_consumer_group_offsets(group)
                if not committed:
                    result[group] = {}
                    continue
                ends = await consumer.end_offsets(list(committed))
                per_topic: dict[str, int] = {}
                for tp, meta in committed.items():
                    behind = max(ends.get(tp, 0) - max(meta.offset, 0), 0)
                    per_topic[tp.topic] = per_topic.get(tp.topic, 0) + behind
                result[group] = per_topic
                for topic, behind in per_topic.items():
                    self._metrics.consumer_lag.labels(group=group, topic=topic).set(behind)
        finally:
            await consumer.stop()
            await admin.close()
        self.lag = result
        return result

    def worst(self) -> int:
        return max((v for topics in self.lag.values() for v in topics.values()), default=0)

    async def ready(self) -> bool:
        """Readiness: no group lags more than the threshold (as last measured)."""
        return self.worst() <= self._threshold

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.measure()
                if self.worst() > self._threshold:
                    log.warning("consumer lag above threshold", lag=self.lag)
            except Exception as exc:
                log.warning("consumer lag not measured", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval_s)
