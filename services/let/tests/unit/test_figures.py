"""The yearly figures: results per year and the share solved under escalation pressure."""

from __future__ import annotations

from collections import Counter

from pmm_let.service.usecases import RESULTS, figures_per_year


def test_share_solved_under_pressure_per_year_leaves_refusals_out() -> None:
    closed = Counter(
        {
            (2027, "breakthrough"): 2,
            (2026, "withdrawn_solved_under_pressure"): 3,
            (2026, "breakthrough"): 4,
            (2026, "none"): 1,
            (2026, "withdrawn"): 2,
            (2026, "refused"): 5,
        }
    )
    y2026, y2027 = figures_per_year(closed)
    assert y2026.year == 2026
    assert y2026.outcomes == {
        "breakthrough": 4,
        "partial": 0,
        "none": 1,
        "withdrawn_solved_under_pressure": 3,
        "withdrawn": 2,
        "refused": 5,
    }
    assert y2026.share_solved_under_pressure == 0.3  # 3 of 10 that ended
    assert y2027.share_solved_under_pressure == 0.0
    assert set(y2027.outcomes) == set(RESULTS)


def test_a_year_with_only_refusals_has_no_share() -> None:
    (only,) = figures_per_year(Counter({(2026, "refused"): 2}))
    assert only.share_solved_under_pressure is None
