"""Jaarrapportage systeemleren: the yearly report, from the year's counter buckets that the
case and signal changes feed (``domain/figures.py``), and the measures kept as examples.
``build`` is pure: it turns the counters into the report."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pmm_contracts.vocabulary import (
    BottleneckSubtype,
    BottleneckType,
    LearningOrder,
    LifeDomain,
    SubmitterKind,
)
from pmm_signalen.adapters.figures import YearlyFigures
from pmm_signalen.domain.figures import POINT_SUBTYPES, POINT_TYPES, split
from pmm_signalen.domain.model import AssignmentStatus

FOLLOW_UP_LABELS = {
    AssignmentStatus.ASSIGNED.value: "Belegd, nog geen reactie",
    AssignmentStatus.RECEIVED.value: "Ontvangen",
    AssignmentStatus.IN_PROGRESS.value: "In behandeling",
    AssignmentStatus.MEASURE_TAKEN.value: "Maatregel genomen",
    AssignmentStatus.NO_ACTION.value: "Geen actie",
    AssignmentStatus.FORWARDED.value: "Doorgestuurd",
    AssignmentStatus.WITHDRAWN.value: "Ingetrokken (herbelegd of samengevoegd)",
}
OUTCOME_LABELS = {
    "solved": "Opgelost",
    "partly_solved": "Deels opgelost",
    "not_solved": "Niet opgelost",
}
EXAMPLES = 10
COUNTED = {
    "by_submitter_kind": "casussen",
    "life_domains": "casussen (een casus telt bij elk van zijn leefgebieden)",
    "bottleneck_types": "casussen, naar de knelpunten bij aanmelding",
    "learning_point_bottleneck_types": "leerpunten, naar hun knelpunt",
    "learning_point_bottleneck_subtypes": "leerpunten met knelpunt wet- en regelgeving, "
    "naar subtype",
    "outcomes": "casussen",
    "closed_per_month": "casussen",
    "learning_points_by_order": "leerpunten",
    "follow_up": "belegde signalen (een signaal telt bij elke organisatie)",
}
"""What each figure of the report counts (shown with every chart)."""


async def gather(figures: YearlyFigures, year: int, *, refresh: bool = False) -> dict[str, Any]:
    """The year's counters and measure examples. The projector applies pending deltas
    every ``PMM_FIGURES_INTERVAL_S``; ``refresh`` applies them first (a full scan)."""
    if refresh:
        await figures.run_once()
    counts = split(await figures.counts(year))
    follow_up = []
    for key, n in counts.get("follow_up", {}).items():
        org, _, status = key.partition(":")
        follow_up.append((org, status, n))
    return {
        "submitter_kind": counts.get("submitter_kind", {}),
        "life_domains": counts.get("life_domains", {}),
        "bottleneck_types": counts.get("bottleneck_types", {}),
        "point_bottleneck_types": counts.get(POINT_TYPES, {}),
        "point_bottleneck_subtypes": counts.get(POINT_SUBTYPES, {}),
        "outcome": counts.get("outcome", {}),
        "duration_days": {int(k): n for k, n in counts.get("duration_days", {}).items()},
        "closed_month": counts.get("closed_month", {}),
        "order": counts.get("order", {}),
        "follow_up": follow_up,
        "examples": await figures.examples(year, EXAMPLES),
    }


def _labelled(counts: Mapping[Any, int], labels: Mapping[str, str]) -> list[dict[str, Any]]:
    known = [{"key": k, "label": v, "n": int(counts.get(k, 0))} for k, v in labels.items()]
    other = sorted(str(k) for k in counts if k not in labels and k is not None)
    return known + [{"key": k, "label": k, "n": int(counts[k])} for k in other]


def _median(histogram: Mapping[int, int]) -> float | None:
    total = sum(histogram.values())
    if not total:
        return None
    ordered = sorted(histogram.items())

    def nth(index: int) -> int:
        seen = 0
        for value, n in ordered:
            seen += n
            if index < seen:
                return value
        return ordered[-1][0]  # pragma: no cover

    if total % 2:
        return float(nth(total // 2))
    return (nth(total // 2 - 1) + nth(total // 2)) / 2


def build(
    year: int, raw: Mapping[str, Any], *, generated_at: datetime | None = None
) -> dict[str, Any]:
    """The report from the aggregation rows (pure)."""
    durations = {int(k): n for k, n in raw["duration_days"].items() if k is not None}
    cases_closed = sum(raw["submitter_kind"].values())
    measured = sum(durations.values())
    average = sum(k * n for k, n in durations.items()) / measured if measured else None
    median = _median(durations)
    organisations: dict[str, dict[str, int]] = {}
    for org, status, n in raw["follow_up"]:
        organisations.setdefault(org, {s: 0 for s in FOLLOW_UP_LABELS})[status] = n
    follow_up_totals = {
        s: sum(o.get(s, 0) for o in organisations.values()) for s in FOLLOW_UP_LABELS
    }
    examples = [dict(row) for row in raw["examples"]]
    months = [f"{year:04d}-{m:02d}" for m in range(1, 13)]
    return {
        "title": f"Jaarrapportage systeemleren {year}",
        "year": year,
        "generated_at": (generated_at or datetime.now(UTC)).isoformat(),
        "cases_closed": cases_closed,
        "by_submitter_kind": _labelled(raw["submitter_kind"], SubmitterKind.labels()),
        "life_domains": _labelled(raw["life_domains"], LifeDomain.labels()),
        "bottleneck_types": _labelled(raw["bottleneck_types"], BottleneckType.labels()),
        "learning_point_bottleneck_types": _labelled(
            raw.get("point_bottleneck_types", {}), BottleneckType.labels()
        ),
        "learning_point_bottleneck_subtypes": _labelled(
            raw.get("point_bottleneck_subtypes", {}), BottleneckSubtype.labels()
        ),
        "outcomes": _labelled(raw["outcome"], OUTCOME_LABELS),
        "duration_weeks": {
            "average": round(average / 7, 1) if average is not None else None,
            "median": round(median / 7, 1) if median is not None else None,
        },
        "closed_per_month": [{"month": m, "n": int(raw["closed_month"].get(m, 0))} for m in months],
        "learning_points_by_order": _labelled(raw["order"], LearningOrder.labels()),
        "follow_up": _labelled(follow_up_totals, FOLLOW_UP_LABELS),
        "signals_by_organisation": [
            {"organisation": org, "total": sum(statuses.values()), "statuses": statuses}
            for org, statuses in sorted(organisations.items())
        ],
        "measures_examples": examples[:EXAMPLES],
        "counted": COUNTED,
    }


async def yearly_report(
    figures: YearlyFigures, year: int, *, refresh: bool = False
) -> dict[str, Any]:
    return build(year, await gather(figures, year, refresh=refresh))


async def named(
    built: dict[str, Any], organisation: Callable[[str], Awaitable[Mapping[str, Any] | None]]
) -> dict[str, Any]:
    """The report with each organisation's name from the register read model beside its
    code (``organisation_name``; the code where the register does not know it), and each
    example's bottleneck type with its Dutch label."""
    names: dict[str, str] = {}
    for row in [*built["signals_by_organisation"], *built["measures_examples"]]:
        code = str(row.get("organisation") or "")
        if code and code not in names:
            known = await organisation(code)
            names[code] = str((known or {}).get("name") or code)
        row["organisation_name"] = names.get(code, code)
    labels = BottleneckType.labels()
    for example in built["measures_examples"]:
        if example.get("bottleneck_type") in labels:
            example["bottleneck_type_label"] = labels[example["bottleneck_type"]]
    return built
