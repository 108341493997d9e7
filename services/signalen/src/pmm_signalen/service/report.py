"""Jaarrapportage systeemleren: the yearly report, computed with Mongo aggregation
($match/$group, and $unwind on the grouped array itself) over the cases and signals this
service keeps. ``figures`` is pure: it turns the aggregation rows into the report."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pmm_contracts.vocabulary import BottleneckType, LearningOrder, LifeDomain, SubmitterKind
from pmm_runtime.mongo import Document
from pmm_signalen.adapters.repository import CaseRepository, SignalRepository, rows
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


async def gather(cases: CaseRepository, signals: SignalRepository, year: int) -> dict[str, Any]:
    """Every aggregation the report needs, as raw rows."""
    in_year: Document = {"$match": {"closed_year": year}}
    signals_in_year: Document = {"$match": {"year": year, "status": {"$ne": "merged"}}}

    async def by(field: str, *, unwind: bool = False) -> dict[Any, int]:
        pipeline: list[Document] = [in_year]
        if unwind:
            pipeline.append({"$unwind": "$" + field})
        pipeline.append({"$group": {"_id": "$" + field, "n": {"$sum": 1}}})
        return rows(await cases.aggregate(pipeline))

    follow_up = await signals.aggregate(
        [
            signals_in_year,
            {"$unwind": "$assignments"},
            {
                "$group": {
                    "_id": {
                        "organisation": "$assignments.organisation",
                        "status": "$assignments.status",
                    },
                    "n": {"$sum": 1},
                }
            },
        ]
    )
    examples = await signals.raw(
        {"year": year, "assignments.status": AssignmentStatus.MEASURE_TAKEN.value},
        {"order": 1, "bottleneck": 1, "assignments": 1, "regulation_reference": 1},
        limit=EXAMPLES,
    )
    return {
        "submitter_kind": await by("submitter_kind"),
        "life_domains": await by("life_domains", unwind=True),
        "bottleneck_types": await by("bottleneck_types", unwind=True),
        "outcome": await by("outcome"),
        "duration_days": await by("duration_days"),
        "closed_month": await by("closed_month"),
        "order": rows(
            await signals.aggregate(
                [signals_in_year, {"$group": {"_id": "$order", "n": {"$sum": 1}}}]
            )
        ),
        "follow_up": [
            (row["_id"]["organisation"], row["_id"]["status"], int(row["n"])) for row in follow_up
        ],
        "examples": examples,
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


def figures(
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
    examples = []
    for doc in raw["examples"]:
        for item in doc.get("assignments", []):
            if item.get("status") != AssignmentStatus.MEASURE_TAKEN.value:
                continue
            measure = next(
                (
                    a.get("explanation")
                    for a in reversed(item.get("answers", []))
                    if a.get("status") == AssignmentStatus.MEASURE_TAKEN.value
                ),
                None,
            )
            examples.append(
                {
                    "signal_id": doc["_id"],
                    "organisation": item["organisation"],
                    "order": doc.get("order"),
                    "bottleneck_type": (doc.get("bottleneck") or {}).get("type"),
                    "regulation_reference": doc.get("regulation_reference"),
                    "measure": measure,
                }
            )
    months = [f"{year:04d}-{m:02d}" for m in range(1, 13)]
    return {
        "title": f"Jaarrapportage systeemleren {year}",
        "year": year,
        "generated_at": (generated_at or datetime.now(UTC)).isoformat(),
        "cases_closed": cases_closed,
        "by_submitter_kind": _labelled(raw["submitter_kind"], SubmitterKind.labels()),
        "life_domains": _labelled(raw["life_domains"], LifeDomain.labels()),
        "bottleneck_types": _labelled(raw["bottleneck_types"], BottleneckType.labels()),
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
    }


async def yearly_report(
    cases: CaseRepository, signals: SignalRepository, year: int
) -> dict[str, Any]:
    return figures(year, await gather(cases, signals, year))
