"""The yearly report from aggregation rows (pure), and its CSV and HTML renderings."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from pmm_signalen.service import render
from pmm_signalen.service.report import _median, build, named

RAW: dict[str, Any] = {
    "submitter_kind": {"municipality": 3, "care_institution": 1},
    "life_domains": {"income": 4, "housing": 2},
    "bottleneck_types": {"laws_and_regulations": 3, "ict": 1},
    "point_bottleneck_types": {"laws_and_regulations": 4, "cooperation": 2},
    "point_bottleneck_subtypes": {"not_foreseen": 3, "interpretation_unclear": 1},
    "outcome": {"solved": 3, "not_solved": 1},
    "duration_days": {28: 1, 56: 2, 70: 1},
    "closed_month": {"2026-02": 1, "2026-06": 3},
    "order": {"1": 2, "3": 3},
    "follow_up": [("uwv", "measure_taken", 2), ("uwv", "assigned", 1), ("szw", "no_action", 2)],
    "examples": [
        {
            "signal_id": "s-1",
            "organisation": "uwv",
            "order": "3",
            "bottleneck_type": "laws_and_regulations",
            "regulation_reference": "Participatiewet art. 18",
            "measure": "werkinstructie <aangepast>",
        }
    ],
}


def report() -> dict[str, Any]:
    return build(2026, RAW, generated_at=datetime(2027, 1, 5, tzinfo=UTC))


def test_figures() -> None:
    r = report()
    assert r["cases_closed"] == 4
    kinds = {row["key"]: row["n"] for row in r["by_submitter_kind"]}
    assert kinds == {
        "municipality": 3,
        "public_service_provider": 0,
        "care_institution": 1,
        "other": 0,
    }
    assert r["duration_weeks"] == {"average": 7.5, "median": 8.0}
    assert [m["n"] for m in r["closed_per_month"]] == [0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0]
    orders = {row["key"]: row["n"] for row in r["learning_points_by_order"]}
    assert orders == {"1": 2, "2": 0, "3": 3}
    by_org = {o["organisation"]: o for o in r["signals_by_organisation"]}
    assert by_org["uwv"]["total"] == 3
    assert by_org["uwv"]["statuses"]["measure_taken"] == 2
    follow_up = {row["key"]: row["n"] for row in r["follow_up"]}
    assert follow_up["measure_taken"] == 2
    assert follow_up["no_action"] == 2
    assert r["measures_examples"] == [
        {
            "signal_id": "s-1",
            "organisation": "uwv",
            "order": "3",
            "bottleneck_type": "laws_and_regulations",
            "regulation_reference": "Participatiewet art. 18",
            "measure": "werkinstructie <aangepast>",
        }
    ]


def test_the_learning_points_bottlenecks_beside_the_intakes_each_saying_what_it_counts() -> None:
    r = report()
    intake = {row["key"]: row["n"] for row in r["bottleneck_types"]}
    points = {row["key"]: row["n"] for row in r["learning_point_bottleneck_types"]}
    subtypes = {row["key"]: row["n"] for row in r["learning_point_bottleneck_subtypes"]}
    assert intake["laws_and_regulations"] == 3
    assert points["laws_and_regulations"] == 4
    assert points["cooperation"] == 2
    assert points["ict"] == 0  # every type listed, also the ones not seen
    assert subtypes == {
        "not_foreseen": 3,
        "interpretation_unclear": 1,
        "deviation_conditions_unclear": 0,
    }
    assert "casussen" in r["counted"]["bottleneck_types"]
    assert "leerpunten" in r["counted"]["learning_point_bottleneck_types"]
    assert "leerpunten" in r["counted"]["learning_point_bottleneck_subtypes"]
    page = render.to_html(r)
    for section, title in render.SECTIONS:  # every chart says what it counts, under its title
        heading = page.index(f"<h2>{title}</h2>")
        assert page.index(f"Telt: {r['counted'][section]}", heading) < page.index("<svg", heading)
    assert "Situatie niet voorzien in wet of beleid" in page
    rows = list(csv.DictReader(io.StringIO(render.to_csv(r))))
    assert {"learning_point_bottleneck_types", "learning_point_bottleneck_subtypes"} <= {
        row["section"] for row in rows
    }
    counted = {row["key"]: row["label"] for row in rows if row["section"] == "counted"}
    assert counted == r["counted"]


def test_median() -> None:
    assert _median({}) is None
    assert _median({5: 1}) == 5
    assert _median({1: 1, 3: 1}) == 2
    assert _median({1: 2, 9: 1}) == 1
    assert _median({2: 1, 4: 1, 10: 2}) == 7


def test_empty_year() -> None:
    empty = {k: ({} if k not in ("follow_up", "examples") else []) for k in RAW}
    r = build(2025, empty)
    assert r["cases_closed"] == 0
    assert r["duration_weeks"] == {"average": None, "median": None}
    page = render.to_html(r)
    assert "n.v.t." in page
    assert "<svg" in page


def test_csv_has_every_section() -> None:
    rows = list(csv.DictReader(io.StringIO(render.to_csv(report()))))
    sections = {row["section"] for row in rows}
    assert {
        "summary",
        "duration_weeks",
        "by_submitter_kind",
        "life_domains",
        "bottleneck_types",
        "learning_points_by_order",
        "follow_up",
        "closed_per_month",
        "signals_by_organisation",
        "measures_examples",
    } <= sections
    closed = next(r for r in rows if r["key"] == "cases_closed")
    assert closed["value"] == "4"


def test_html_is_self_contained_with_charts_and_escaped_text() -> None:
    page = render.to_html(report())
    assert page.startswith("<!DOCTYPE html>")
    assert "Jaarrapportage systeemleren 2026" in page
    assert page.count("<svg") == 9  # timeline + eight bar charts
    assert "<polyline" in page  # the timeline's cumulative line
    assert "werkinstructie &lt;aangepast&gt;" in page
    for external in ("<script", "src=", "<link", "http://", "https://", "@import"):
        assert external not in page


def test_export_csv_serialises_lists() -> None:
    text = render.export_csv(
        [{"signal_id": "s", "organisations": ["uwv", "szw"], "regulation_reference": None}],
        ["signal_id", "organisations", "regulation_reference"],
    )
    row = next(csv.DictReader(io.StringIO(text)))
    assert row == {"signal_id": "s", "organisations": '["uwv", "szw"]', "regulation_reference": ""}


async def test_the_report_names_organisations_and_bottleneck_types() -> None:
    known = {"uwv": {"_id": "uwv", "name": "Uitvoeringsinstituut Werknemersverzekeringen"}}

    async def organisation(code: str) -> dict[str, Any] | None:
        return known.get(code)

    named_report = await named(report(), organisation)
    by_org = {o["organisation"]: o for o in named_report["signals_by_organisation"]}
    assert by_org["uwv"]["organisation_name"] == known["uwv"]["name"]
    assert all(o["organisation_name"] for o in named_report["signals_by_organisation"])
    html = render.to_html(named_report)
    assert known["uwv"]["name"] in html
    assert ">uwv<" not in html, "a code where a name is known"
    rows = list(csv.DictReader(io.StringIO(render.to_csv(named_report))))
    assert any(
        r["section"] == "signals_by_organisation" and r["label"] == known["uwv"]["name"]
        for r in rows
    )
    example = named_report["measures_examples"][0]
    assert example["bottleneck_type_label"] != example["bottleneck_type"]
    assert example["bottleneck_type_label"] in html
