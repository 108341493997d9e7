"""Yearly figures as counter deltas (pure).

A change that moves a figure of the yearly report (a case evaluated; an assignment that
changes status) carries a *delta*: ``{"id", "year", "bucket", "counts": {key: +-n},
"examples": [...]}``. The delta is written in the same atomic single-document update as
the change itself (in the ``_figures`` field, like the outbox), and a projector adds it to
the year's bucket document exactly once (keyed by the delta id). The report then reads a
few dozen bucket documents instead of scanning every case: FerretDB decodes every
document it scans (about 0.2 ms each), so a scan of 100,000 cases alone takes ~20 s.

Counter keys: ``<dimension>:<value>``, e.g. ``submitter_kind:municipality``,
``duration_days:56``, ``closed_month:2026-03``, ``order:3``, ``follow_up:uwv:received``,
``learning_point_bottleneck_types:ict`` (per learning point, unlike ``bottleneck_types``:
per case, from the intake).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pmm_contracts.events.cases import CaseEvaluated
from pmm_signalen.domain.model import AssignmentStatus, Signal

BUCKETS = 64
"""Bucket documents per year: spreads the applied-delta ids (idempotency) over documents."""

Delta = dict[str, Any]
POINT_TYPES = "learning_point_bottleneck_types"
POINT_SUBTYPES = "learning_point_bottleneck_subtypes"


def bucket_of(aggregate_id: str) -> int:
    return zlib.crc32(aggregate_id.encode()) % BUCKETS


def case_delta(evaluation: CaseEvaluated, signals: Iterable[Signal] = ()) -> Delta:
    """One evaluated (closed) case: submitter kind, life domains, the intake's bottleneck
    types (once per case), outcome, duration, month closed, its learning points by order
    and by bottleneck type and subtype (once per learning point), and the first follow-up
    status of the ``signals`` created from it (written with the case, so a signal's own
    creation carries no delta)."""
    closed = evaluation.closed_at
    counts: Counter[str] = Counter()
    counts["cases"] += 1
    counts[f"submitter_kind:{evaluation.submitter_kind.value}"] += 1
    for domain in sorted({d.value for d in evaluation.life_domains}):
        counts[f"life_domains:{domain}"] += 1
    for btype in sorted({b.type.value for b in evaluation.bottlenecks}):
        counts[f"bottleneck_types:{btype}"] += 1
    counts[f"outcome:{evaluation.outcome.value}"] += 1
    counts[f"duration_days:{evaluation.duration_days}"] += 1
    counts[f"closed_month:{closed.year:04d}-{closed.month:02d}"] += 1
    for point in evaluation.learning_points:
        counts[f"order:{point.order.value}"] += 1
        counts[f"{POINT_TYPES}:{point.bottleneck.type.value}"] += 1
        if point.bottleneck.subtype is not None:
            counts[f"{POINT_SUBTYPES}:{point.bottleneck.subtype.value}"] += 1
    for signal in signals:
        counts.update(follow_up_counts(signal))
    return {
        "id": f"case:{evaluation.case_id}:evaluated",
        "year": closed.year,
        "bucket": bucket_of(evaluation.case_id),
        "counts": dict(counts),
        "examples": [],
    }


def follow_up_counts(signal: Signal | None) -> Counter[str]:
    counts: Counter[str] = Counter()
    for item in signal.assignments if signal else ():
        counts[f"follow_up:{item.organisation}:{item.status.value}"] += 1
    return counts


def signal_delta(before: Counter[str], after: Signal, delta_id: str) -> Delta | None:
    """The change in follow-up figures from ``before`` to ``after``; None when none.

    A new measure taken is kept as an example for the report.
    """
    now = follow_up_counts(after)
    counts = {k: now[k] - before[k] for k in sorted(set(now) | set(before)) if now[k] != before[k]}
    if not counts:
        return None
    examples = []
    measured = f":{AssignmentStatus.MEASURE_TAKEN.value}"
    for key, change in counts.items():
        if key.endswith(measured) and change > 0:
            org = key.split(":")[1]
            item = after.assignment(org)
            measure = item.answers[-1].explanation if item and item.answers else None
            examples.append(
                {
                    "signal_id": after.id,
                    "organisation": org,
                    "order": after.order.value,
                    "bottleneck_type": after.bottleneck.type.value,
                    "regulation_reference": after.regulation_reference,
                    "measure": measure,
                }
            )
    return {
        "id": delta_id,
        "year": after.year,
        "bucket": bucket_of(after.id),
        "counts": counts,
        "examples": examples,
    }


def split(counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """``{"submitter_kind:x": n, ...}`` → ``{"submitter_kind": {"x": n}, ...}``."""
    result: dict[str, dict[str, int]] = {}
    for key, n in counts.items():
        dimension, _, value = key.partition(":")
        result.setdefault(dimension, {})[value] = result.get(dimension, {}).get(value, 0) + n
    return result
