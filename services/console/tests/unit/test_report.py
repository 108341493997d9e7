"""The yearly report as the console lays it out: signalen's own report (built by its pure
``build`` from counters) becomes Dutch tables with organisation names, a CSV that Dutch
Excel opens (UTF-8 with BOM, ``;``, decimal comma) and an XLSX workbook."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from openpyxl import load_workbook

from pmm_console import labels
from pmm_console import report as layout
from pmm_console.app import templates
from pmm_signalen.service.report import build

ORGS = {"uwv": "UWV", "gm0363": "Gemeente Amsterdam"}


def a_report() -> dict[str, Any]:
    raw = {
        "submitter_kind": {"municipality": 3},
        "life_domains": {"income": 2, "housing": 1},
        "bottleneck_types": {"laws_and_regulations": 2, "ict": 1},
        "point_bottleneck_types": {"cooperation": 1},
        "point_bottleneck_subtypes": {},
        "outcome": {"solved": 2, "partly_solved": 1},
        "duration_days": {30: 1, 40: 1, 61: 1},
        "closed_month": {"2026-03": 2, "2026-11": 1},
        "order": {"2": 1},
        "follow_up": [("uwv", "measure_taken", 1), ("gm0363", "assigned", 2)],
        "examples": [
            {
                "signal_id": "s-1",
                "organisation": "uwv",
                "order": "2",
                "bottleneck_type": "cooperation",
                "regulation_reference": None,
                "measure": "vaste contactpersoon per regio",
            }
        ],
    }
    return build(2026, raw, generated_at=datetime(2026, 12, 2, 9, 30, tzinfo=UTC))


def test_tables_name_organisations_and_speak_dutch() -> None:
    found = {t.key: t for t in layout.tables(a_report(), ORGS)}
    by_org = found["signals_by_organisation"]
    assert [r[0] for r in by_org.rows] == ["Gemeente Amsterdam", "UWV"]  # by name
    assert "Maatregel genomen" in by_org.headers
    example = found["measures_examples"].rows[0]
    assert example[0] == "UWV"
    assert example[1] == labels.LEARNING_ORDERS["2"]
    assert example[2] == labels.BOTTLENECK_TYPES["cooperation"]
    bottlenecks = dict(found["bottleneck_types"].rows)  # type: ignore[arg-type]
    assert bottlenecks[labels.BOTTLENECK_TYPES["laws_and_regulations"]] == 2
    months = dict(found["closed_per_month"].rows)  # type: ignore[arg-type]
    assert months["maart 2026"] == 2
    assert found["closed_per_month"].peak == 2
    # nothing of signalen's English keys reaches a table
    for table in found.values():
        for row in table.rows:
            for value in row:
                assert value not in ("laws_and_regulations", "measure_taken", "cooperation", "uwv")


def test_the_csv_opens_in_dutch_excel() -> None:
    data = layout.to_csv(a_report(), ORGS)
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 byte order mark
    text = data.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0] == ["Jaarrapportage systeemleren 2026"]
    assert ["Afgesloten casussen", "3"] in rows
    average = next(r for r in rows if r and r[0] == "Gemiddelde doorlooptijd (weken)")
    assert average[1] == "6,2"  # (30 + 40 + 61) / 3 days = 6.24 weeks, rounded by signalen
    assert ["Opgesteld op", "2 december 2026, 10:30"] in rows
    assert ["Organisatie", "Orde", "Knelpunt", "Regeling", "Maatregel"] in rows
    assert any(r[:1] == ["UWV"] and "vaste contactpersoon per regio" in r for r in rows)
    assert "\r\n" in text


def test_the_xlsx_has_a_sheet_per_table_with_numbers_as_numbers() -> None:
    book = load_workbook(io.BytesIO(layout.to_xlsx(a_report(), ORGS)))
    assert book.sheetnames[0] == "Samenvatting"
    assert all(len(name) <= 31 for name in book.sheetnames)
    assert len(set(book.sheetnames)) == len(book.sheetnames)
    summary = {row[0]: row[1] for row in book["Samenvatting"].iter_rows(values_only=True) if row}
    assert summary["Afgesloten casussen"] == 3
    sheet = book["Signalen per organisatie en opv"]
    rows = list(sheet.iter_rows(min_row=3, values_only=True))
    assert rows[0][:2] == ("Organisatie", "Totaal")
    assert rows[1][:2] == ("Gemeente Amsterdam", 2)
    assert rows[2][:2] == ("UWV", 1)
    assert isinstance(rows[1][1], int)


def test_the_report_page_shows_the_tables_escaped() -> None:
    report = a_report()
    report["measures_examples"][0]["measure"] = "<script>alert(1)</script>"
    page = (
        templates()
        .get_template("report.html")
        .render(
            year=2026,
            years=[2026, 2025],
            report=report,
            summary=layout.figures(layout.summary(report)),
            tables=layout.tables(report, ORGS),
            L=labels,
            who=None,
        )
    )
    assert "&lt;script&gt;" in page
    assert "<script>alert" not in page
    assert "Gemeente Amsterdam" in page
    assert "maart 2026" in page
    assert 'href="/report/2026.xlsx"' in page
    assert 'href="/report/2026.csv"' in page
    assert "<meter" in page
