"""Yearly-figure deltas: what an evaluation and a change of follow-up add to the report."""

from __future__ import annotations

from pmm_contracts.events.cases import Bottleneck
from pmm_contracts.events.signals import ResponseStatus
from pmm_contracts.vocabulary import BottleneckType
from pmm_signalen.domain.figures import (
    BUCKETS,
    bucket_of,
    case_delta,
    follow_up_counts,
    signal_delta,
    split,
)

from .test_signal_domain import NOW, TERM, evaluation, point, signal


def test_an_evaluation_counts_the_case_its_learning_points_and_its_new_signals() -> None:
    ict = point("lp-2", ("uwv", "szw"), bottleneck=Bottleneck(type=BottleneckType.ICT))
    created = [signal("uwv"), signal("uwv", "szw")]
    delta = case_delta(evaluation(point("lp-1"), ict), created)
    assert delta["id"] == "case:c-1:evaluated"
    assert delta["year"] == 2026
    assert 0 <= delta["bucket"] < BUCKETS
    assert delta["counts"] == {
        "cases": 1,
        "submitter_kind:municipality": 1,
        "life_domains:housing": 1,
        "life_domains:income": 1,
        "bottleneck_types:cooperation": 1,  # the intake's, once per case
        "outcome:solved": 1,
        "duration_days:58": 1,
        "closed_month:2026-11": 1,
        "order:3": 2,
        # the learning points', once per point: type, and subtype where it has one
        "learning_point_bottleneck_types:laws_and_regulations": 1,
        "learning_point_bottleneck_types:ict": 1,
        "learning_point_bottleneck_subtypes:not_foreseen": 1,
        # each new signal's first follow-up status (a creation carries no delta of its own)
        "follow_up:uwv:assigned": 2,
        "follow_up:szw:assigned": 1,
    }


def test_a_follow_up_change_moves_counts_and_keeps_a_measure_as_example() -> None:
    s = signal("uwv", "szw")
    created = signal_delta(follow_up_counts(None), s, f"{s.id}:v1")
    assert created is not None
    assert created["counts"] == {"follow_up:szw:assigned": 1, "follow_up:uwv:assigned": 1}
    before = follow_up_counts(s)
    s.answer(
        "uwv",
        ResponseStatus.MEASURE_TAKEN,
        "beleidsregel aangepast",
        None,
        at=NOW,
        term_days=TERM,
        via="kafka",
    )
    changed = signal_delta(before, s, f"{s.id}:v2")
    assert changed is not None
    assert changed["counts"] == {"follow_up:uwv:assigned": -1, "follow_up:uwv:measure_taken": 1}
    assert changed["examples"][0]["measure"] == "beleidsregel aangepast"
    assert changed["examples"][0]["organisation"] == "uwv"
    assert signal_delta(follow_up_counts(s), s, "x") is None  # nothing moved


def test_split_and_buckets() -> None:
    assert split({"cases": 2, "follow_up:uwv:received": 1, "order:3": 4}) == {
        "cases": {"": 2},
        "follow_up": {"uwv:received": 1},
        "order": {"3": 4},
    }
    assert bucket_of("abc") == bucket_of("abc")
