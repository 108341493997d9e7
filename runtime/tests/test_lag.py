"""Consumer lag per group: a metric, and /readyz says lagging above the threshold."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from pmm_contracts.envelope import CloudEvent
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.testing import create_topics, eventually

from .support import Counted, platform
from .test_consumer import counted, produce

pytestmark = pytest.mark.integration


async def test_lag_of_a_blocked_consumer_is_measured_and_turns_readiness_red(
    make_settings: Callable[..., ServiceSettings], running_platform: Any, unique: str
) -> None:
    # one message at a time, so the committed offset stops exactly at the blocked one (a
    # batch is committed as a whole: its lag would depend on how the records were batched)
    settings = make_settings(
        service_name="lagging", consumer_lag_threshold=5, consumer_batch_size=1
    )
    topic = f"test.lag.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic, topic + ".dlq"])
    app = platform(settings)
    handled: list[int] = []
    release = asyncio.Event()

    async def slow(event: CloudEvent[Counted]) -> None:
        if len(handled) >= 3:
            await release.wait()  # the fourth and later wait: the group falls behind
        handled.append(event.data.amount)

    app.subscribe(topic, handlers={Counted: slow}, purpose="slow")
    await running_platform(app)
    await produce(settings.kafka_bootstrap, topic, *[counted("c", n) for n in range(10)])
    assert await eventually(lambda: len(handled) == 3)

    async def measured() -> bool:
        lag = await app.lag.measure()
        return lag.get(settings.group_id("slow"), {}).get(topic) == 7

    assert await eventually(measured, timeout_s=20)
    assert not await app.lag.ready()
    assert f'pmm_consumer_lag{{group="{settings.group_id("slow")}",topic="{topic}"}} 7.0' in (
        app.metrics.render().decode()
    )
    release.set()
    assert await eventually(lambda: len(handled) == 10)

    async def caught_up() -> bool:
        lag = await app.lag.measure()
        return lag.get(settings.group_id("slow"), {}).get(topic) == 0

    assert await eventually(caught_up, timeout_s=20)
    assert await app.lag.ready()
