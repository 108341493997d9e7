"""The yearly report of Systeemleren as people read it: the figures signalen answers (its
JSON report), laid out as Dutch tables with organisation names instead of codes, for the
page, for a CSV that Dutch Excel opens as it is (UTF-8 with BOM, ``;``, decimal comma)
and for an XLSX workbook.

Nothing is counted here: every number is signalen's. This module only names, orders and
formats (pure functions; the view fetches the report and the register's names).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from pmm_console import labels
from pmm_console.context import MONTHS, dutch_date

Cell = str | int | float | None

# signalen's report sections with (key, label, n) rows, in the order of its page
SECTIONS = (
    ("by_submitter_kind", "Casussen naar soort indiener", labels.SUBMITTER_KINDS),
    ("life_domains", "Leefgebieden", labels.LIFE_DOMAINS),
    ("bottleneck_types", "Soorten knelpunten bij aanmelding", labels.BOTTLENECK_TYPES),
    (
        "learning_point_bottleneck_types",
        "Soorten knelpunten in de leerpunten",
        labels.BOTTLENECK_TYPES,
    ),
    (
        "learning_point_bottleneck_subtypes",
        "Knelpunten wet- en regelgeving in de leerpunten",
        labels.BOTTLENECK_SUBTYPES,
    ),
    ("outcomes", "Uitkomst", labels.OUTCOME),
    ("learning_points_by_order", "Leerpunten naar orde", labels.LEARNING_ORDERS),
    ("follow_up", "Opvolging van signalen", labels.ASSIGNMENT_STATUS),
)


@dataclass(frozen=True)
class Table:
    """One table of the report: what it counts, its Dutch headers and its rows."""

    key: str
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[Cell, ...]]
    counted: str | None = None
    bars: bool = False  # the last column is a count worth a bar on the page
    peak: int = field(default=0)


def month_name(value: str) -> str:
    """``2026-03`` -> ``maart 2026``."""
    year, _, month = value.partition("-")
    if month.isdigit() and 1 <= int(month) <= 12:
        return f"{MONTHS[int(month) - 1]} {year}"
    return value


def _label(row: Mapping[str, Any], table: Mapping[str, str]) -> str:
    """signalen's label; the console's Dutch label where signalen had none (its key)."""
    key, given = str(row.get("key")), row.get("label")
    if given and str(given) != key:
        return str(given)
    return table.get(key, key)


def _counted(report: Mapping[str, Any], key: str) -> str | None:
    value = (report.get("counted") or {}).get(key)
    return str(value) if value else None


def summary(report: Mapping[str, Any]) -> list[tuple[str, Cell]]:
    weeks = report.get("duration_weeks") or {}
    points = sum(int(r.get("n", 0)) for r in report.get("learning_points_by_order", []))
    generated = report.get("generated_at")
    return [
        ("Jaar", report.get("year")),
        ("Afgesloten casussen", report.get("cases_closed")),
        ("Gemiddelde doorlooptijd (weken)", weeks.get("average")),
        ("Mediane doorlooptijd (weken)", weeks.get("median")),
        ("Leerpunten", points),
        ("Opgesteld op", dutch_date(generated) if generated else None),
    ]


def tables(report: Mapping[str, Any], org_names: Mapping[str, str]) -> list[Table]:
    """Every table of the report, with names and Dutch labels."""

    def org(code: Any) -> str:
        return org_names.get(str(code), str(code))

    found: list[Table] = []
    months = [(month_name(str(r["month"])), int(r["n"])) for r in report["closed_per_month"]]
    found.append(
        Table(
            "closed_per_month",
            "Afgesloten casussen per maand",
            ("Maand", "Aantal"),
            list(months),
            _counted(report, "closed_per_month"),
            bars=True,
            peak=max((n for _, n in months), default=0),
        )
    )
    for key, title, table in SECTIONS:
        rows = [(_label(r, table), int(r["n"])) for r in report.get(key, [])]
        found.append(
            Table(
                key,
                title,
                ("Omschrijving", "Aantal"),
                list(rows),
                _counted(report, key),
                bars=True,
                peak=max((n for _, n in rows), default=0),
            )
        )
    statuses = [(str(r["key"]), _label(r, labels.ASSIGNMENT_STATUS)) for r in report["follow_up"]]
    by_org = sorted(report["signals_by_organisation"], key=lambda o: org(o["organisation"]))
    found.append(
        Table(
            "signals_by_organisation",
            "Signalen per organisatie en opvolging",
            ("Organisatie", "Totaal", *(name for _, name in statuses)),
            [
                (
                    org(o["organisation"]),
                    int(o["total"]),
                    *(int(o["statuses"].get(k, 0)) for k, _ in statuses),
                )
                for o in by_org
            ],
            _counted(report, "follow_up"),
        )
    )
    found.append(
        Table(
            "measures_examples",
            "Voorbeelden van genomen maatregelen",
            ("Organisatie", "Orde", "Knelpunt", "Regeling", "Maatregel"),
            [
                (
                    org(e.get("organisation")),
                    labels.LEARNING_ORDERS.get(str(e.get("order")), e.get("order")),
                    labels.BOTTLENECK_TYPES.get(
                        str(e.get("bottleneck_type")), e.get("bottleneck_type")
                    ),
                    e.get("regulation_reference") or "",
                    e.get("measure") or "",
                )
                for e in report["measures_examples"]
            ],
        )
    )
    return found


def _dutch_number(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}".replace(".", ",")
    return str(value)


def to_csv(report: Mapping[str, Any], org_names: Mapping[str, str]) -> bytes:
    """The report as one CSV that Dutch Excel opens correctly: UTF-8 with a byte order mark,
    ``;`` between fields, a decimal comma; one block per table with its title."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([str(report.get("title") or "Jaarrapportage systeemleren")])
    for name, value in summary(report):
        writer.writerow([name, _dutch_number(value)])
    for table in tables(report, org_names):
        writer.writerow([])
        writer.writerow([table.title])
        if table.counted:
            writer.writerow([f"Telt: {table.counted}"])
        writer.writerow(table.headers)
        for row in table.rows:
            writer.writerow([_dutch_number(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


_SHEET_FORBIDDEN = str.maketrans({c: " " for c in "[]:*?/\\"})
_HEAD = Font(bold=True, color="FFFFFF")
_HEAD_FILL = PatternFill("solid", fgColor="1F5A96")


def _sheet_title(title: str, taken: set[str]) -> str:
    """Excel's sheet names: at most 31 characters, unique, none of ``[]:*?/\\``."""
    base = title.translate(_SHEET_FORBIDDEN).strip()[:31]
    name, n = base, 2
    while name.lower() in taken:
        suffix = f" ({n})"
        name, n = base[: 31 - len(suffix)] + suffix, n + 1
    taken.add(name.lower())
    return name


def to_xlsx(report: Mapping[str, Any], org_names: Mapping[str, str]) -> bytes:
    """The report as a workbook: a summary sheet, then one sheet per table (numbers as
    numbers, so they can be summed and charted)."""
    book = Workbook()
    first = book.active
    assert first is not None  # a new workbook has its sheet
    taken: set[str] = set()
    first.title = _sheet_title("Samenvatting", taken)
    first.append([str(report.get("title") or "Jaarrapportage systeemleren")])
    first["A1"].font = Font(bold=True, size=14)
    first.append([])
    for name, value in summary(report):
        first.append([name, value])
    first.column_dimensions["A"].width = 36
    first.column_dimensions["B"].width = 24
    for table in tables(report, org_names):
        sheet = book.create_sheet(_sheet_title(table.title, taken))
        sheet.append([table.title])
        sheet["A1"].font = Font(bold=True, size=13)
        sheet.append([f"Telt: {table.counted}"] if table.counted else [])
        sheet.append(list(table.headers))
        for cell in sheet[3]:
            cell.font, cell.fill = _HEAD, _HEAD_FILL
        for row in table.rows:
            sheet.append(list(row))
        sheet.freeze_panes = "A4"
        for index, header in enumerate(table.headers, start=1):
            longest = max([len(str(header)), *(len(str(r[index - 1] or "")) for r in table.rows)])
            width = min(max(longest + 2, 10), 60)
            sheet.column_dimensions[get_column_letter(index)].width = width
            if width == 60:
                for cells in sheet.iter_rows(min_row=4, min_col=index, max_col=index):
                    cells[0].alignment = Alignment(wrap_text=True, vertical="top")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def figures(values: Sequence[tuple[str, Cell]]) -> list[tuple[str, str]]:
    """The summary as the page shows it (decimal comma, ``n.v.t.`` for no figure)."""
    return [(name, "n.v.t." if v is None else _dutch_number(v)) for name, v in values]
