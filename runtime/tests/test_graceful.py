"""SIGTERM: stop consuming, finish the in-flight handler, commit its offset, exit."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from pmm_runtime.mongo import create_client
from pmm_runtime.settings import ServiceSettings
from pmm_runtime.testing import admin_connection, create_topics, eventually, kafka_env

from .support import Counted
from .test_consumer import counted, produce

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_sigterm_finishes_in_flight_work_commits_and_exits(
    make_settings: Callable[..., ServiceSettings], unique: str, key_pair: tuple[str, str]
) -> None:
    settings = make_settings(service_name="graceful")
    topic = f"test.graceful.{unique}"
    await create_topics(settings.kafka_bootstrap, [topic, topic + ".dlq"])
    await produce(settings.kafka_bootstrap, topic, counted("slow", 1))
    env = {
        **os.environ,
        "PMM_SERVICE_NAME": "graceful",
        **kafka_env(settings),
        "PMM_MONGODB_URL": settings.mongodb_url,
        "PMM_MONGODB_DATABASE": settings.database_name,
        "PMM_GROUP_PREFIX": settings.group_prefix,
        "PMM_JWT_PUBLIC_KEY": key_pair[1],
        "PMM_HTTP_PORT": str(free_port()),
        "PMM_SHUTDOWN_GRACE_S": "15",
    }
    script = Path(__file__).with_name("graceful_service.py")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        topic,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    client = create_client(settings.mongodb_url, app_name="graceful-test")
    marks = client[settings.database_name]["marks"]
    try:
        await eventually(lambda: marks.find_one({"_id": "started"}), timeout_s=60)
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
        # uvicorn re-raises the signal after its clean shutdown: -SIGTERM, not a crash.
        assert process.returncode in (0, -signal.SIGTERM), output.decode()[-2000:]
        assert await marks.find_one({"_id": "finished"}) is not None  # in-flight work done
        assert b"service stopped" in output
        assert b"Traceback" not in output
    finally:
        if process.returncode is None:
            process.kill()
        await client.close()

    admin = AIOKafkaAdminClient(**admin_connection(settings.kafka_bootstrap).kwargs())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.group_id("main"))
    finally:
        await admin.close()
    assert offsets[TopicPartition(topic, 0)].offset == 1  # committed: no redelivery
    _ = Counted
