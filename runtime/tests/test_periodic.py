"""Periodic jobs with several replicas: each round runs in the one replica holding the
job's lease, and another takes over when that one stops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from pmm_runtime.settings import ServiceSettings

from .support import platform

pytestmark = pytest.mark.integration


async def test_two_replicas_run_a_periodic_job_in_one_of_them_at_a_time(
    make_settings: Callable[..., ServiceSettings],
) -> None:
    settings = make_settings(service_name="periodic")
    runs: list[str] = []
    replicas = [platform(settings) for _ in range(3)]  # one database, three processes
    for replica in replicas:

        async def job(who: str = replica.instance) -> int:
            runs.append(who)
            return 0

        replica.periodic("scan", 0.1, job)
    first, second, third = replicas
    async with first.running():
        async with second.running():
            await asyncio.sleep(1.0)
        assert set(runs) == {first.instance}  # the second replica skipped every round
        assert len(runs) >= 3  # about 10 rounds; fewer on a loaded machine
    before = len(runs)
    async with third.running():  # the first released its lease at shutdown: no wait
        await asyncio.sleep(0.5)
    assert set(runs[before:]) == {third.instance}
