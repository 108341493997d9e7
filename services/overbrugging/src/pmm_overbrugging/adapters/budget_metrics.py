"""The yearly budgets as Prometheus gauges (``pmm_overbrugging_budget_*_euros{year}``).

Every replica reads the budget documents now and then and sets the gauges, so each
replica's ``/metrics`` answers the same figures; the alert ``PmmBudgetNearlyExhausted``
divides sums, which several replicas do not change. Amounts only, no applications.
"""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CollectorRegistry, Gauge
from pymongo.asynchronous.collection import AsyncCollection

from pmm_runtime.logging import get_logger
from pmm_runtime.mongo import Document

log = get_logger(__name__)

FIELDS = ("total", "available", "committed", "paid", "recovered", "written_off")


class BudgetGauges:
    def __init__(
        self,
        registry: CollectorRegistry,
        budgets: AsyncCollection[Document],
        *,
        interval_s: float,
    ) -> None:
        self._budgets = budgets
        self._interval_s = interval_s
        self._gauges = {
            field: Gauge(
                f"pmm_overbrugging_budget_{field}_euros",
                f"The year's bridging budget: {field.replace('_', ' ')}, in euros",
                ["year"],
                registry=registry,
            )
            for field in FIELDS
        }

    async def refresh(self) -> int:
        """Set the gauges from the budget documents; the number of years seen."""
        projection = {f"{field}_cents": 1 for field in FIELDS}
        years = 0
        async for budget in self._budgets.find({}, projection):
            years += 1
            for field, gauge in self._gauges.items():
                cents = budget.get(f"{field}_cents") or 0
                gauge.labels(year=str(budget["_id"])).set(cents / 100)
        return years

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until ``stop`` is set (a platform background task)."""
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("budget gauges not refreshed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval_s)
