"""The yearly report as CSV and as one self-contained HTML page with inline SVG charts
(horizontal bars and a monthly timeline); no external scripts, styles or fonts."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from html import escape
from typing import Any

CSV_HEADER = ("section", "key", "label", "value")

SECTIONS = (
    ("by_submitter_kind", "Casussen naar soort indiener"),
    ("life_domains", "Leefgebieden"),
    ("bottleneck_types", "Soorten knelpunten bij aanmelding"),
    ("learning_point_bottleneck_types", "Soorten knelpunten in de leerpunten"),
    ("learning_point_bottleneck_subtypes", "Knelpunten wet- en regelgeving in de leerpunten"),
    ("outcomes", "Uitkomst"),
    ("learning_points_by_order", "Leerpunten naar orde"),
    ("follow_up", "Opvolging van signalen"),
)


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2)


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerow(("summary", "year", "Jaar", report["year"]))
    writer.writerow(("summary", "cases_closed", "Afgesloten casussen", report["cases_closed"]))
    for key, value in report["duration_weeks"].items():
        writer.writerow(("duration_weeks", key, f"Doorlooptijd in weken ({key})", value))
    for section, counted in report.get("counted", {}).items():
        writer.writerow(("counted", section, counted, ""))
    for section, _ in SECTIONS:
        for row in report[section]:
            writer.writerow((section, row["key"], row["label"], row["n"]))
    for row in report["closed_per_month"]:
        writer.writerow(("closed_per_month", row["month"], row["month"], row["n"]))
    for org in report["signals_by_organisation"]:
        for status, n in org["statuses"].items():
            writer.writerow(
                (
                    "signals_by_organisation",
                    f"{org['organisation']}:{status}",
                    org.get("organisation_name") or org["organisation"],
                    n,
                )
            )
    for example in report["measures_examples"]:
        writer.writerow(
            ("measures_examples", example["organisation"], example["signal_id"], example["measure"])
        )
    return out.getvalue()


def export_csv(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: (
                    json.dumps(v, ensure_ascii=False)
                    if isinstance(v, list | dict)
                    else ("" if v is None else v)
                )
                for k, v in row.items()
            }
        )
    return out.getvalue()


# HTML -------------------------------------------------------------------------------------

BAR = "#1f5a96"
BAR_ALT = "#d08a1e"


def bar_chart(rows: Sequence[dict[str, Any]], *, title: str) -> str:
    """Horizontal bars, one per row, with label and count."""
    label_w, bar_w, row_h = 300, 360, 24
    height = row_h * max(len(rows), 1) + 10
    peak = max((r["n"] for r in rows), default=0) or 1
    parts = [
        f'<svg role="img" aria-label="{escape(title)}" width="{label_w + bar_w + 60}" '
        f'height="{height}" viewBox="0 0 {label_w + bar_w + 60} {height}">'
    ]
    for i, row in enumerate(rows):
        y = 5 + i * row_h
        width = round(bar_w * row["n"] / peak)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" class="l">'
            f"{escape(str(row['label']))}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{width}" height="{row_h - 6}" fill="{BAR}">'
            f"<title>{escape(str(row['label']))}: {row['n']}</title></rect>"
            f'<text x="{label_w + width + 6}" y="{y + 16}" class="v">{row["n"]}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def timeline_chart(rows: Sequence[dict[str, Any]], *, title: str) -> str:
    """Closed cases per month: vertical bars along the year, with a cumulative line."""
    width, height, left, bottom, top = 720, 260, 40, 40, 20
    plot_w, plot_h = width - left - 20, height - bottom - top
    slot = plot_w / max(len(rows), 1)
    peak = max((r["n"] for r in rows), default=0) or 1
    total = sum(r["n"] for r in rows) or 1
    parts = [
        f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#555"/>',
    ]
    points = []
    running = 0
    for i, row in enumerate(rows):
        x = left + i * slot
        h = plot_h * row["n"] / peak
        running += row["n"]
        parts.append(
            f'<rect x="{x + slot * 0.15:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{BAR}"><title>{escape(row["month"])}: {row["n"]}</title>'
            f'</rect><text x="{x + slot / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
            f'class="v">{escape(row["month"][5:])}</text>'
            f'<text x="{x + slot / 2:.1f}" y="{top + plot_h - h - 4:.1f}" text-anchor="middle" '
            f'class="v">{row["n"]}</text>'
        )
        points.append(f"{x + slot / 2:.1f},{top + plot_h - plot_h * running / total:.1f}")
    parts.append(
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{BAR_ALT}" stroke-width="2">'
        "<title>cumulatief aandeel van het jaar</title></polyline>"
    )
    parts.append(
        f'<text x="{left}" y="{height - 6}" class="v">maand (balken: afgesloten casussen; '
        "lijn: cumulatief)</text></svg>"
    )
    return "".join(parts)


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:60rem;color:#222;line-height:1.45;padding:0 1rem}
h1{color:#1f5a96}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}
.kpi{display:flex;gap:1.5rem;flex-wrap:wrap}.kpi div{background:#f1f5fa;padding:.8rem 1.2rem;
border-radius:6px}.kpi b{display:block;font-size:1.6rem;color:#1f5a96}
table{border-collapse:collapse;width:100%;font-size:.9rem}
td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left}
th{background:#f1f5fa}svg .l,svg .v{font-size:12px;fill:#222}
.counts{color:#555;font-size:.9rem;margin:.2rem 0}
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(report: dict[str, Any]) -> str:
    weeks = report["duration_weeks"]
    sections = []
    for key, title in SECTIONS:
        sections.append(
            f"<h2>{escape(title)}</h2>{_counts(report, key)}{bar_chart(report[key], title=title)}"
        )
    statuses = [r["key"] for r in report["follow_up"]]
    org_rows = [
        [
            o.get("organisation_name") or o["organisation"],
            o["total"],
            *(o["statuses"].get(s, 0) for s in statuses),
        ]
        for o in report["signals_by_organisation"]
    ]
    examples = [
        [
            e.get("organisation_name") or e["organisation"],
            e["order"],
            e.get("bottleneck_type_label") or e["bottleneck_type"],
            e["regulation_reference"],
            e["measure"],
        ]
        for e in report["measures_examples"]
    ]
    return f"""<!DOCTYPE html>
<html lang="nl"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(report["title"])}</title><style>{STYLE}</style></head>
<body>
<h1>{escape(report["title"])}</h1>
<p>Landelijk Maatwerkloket Multiproblematiek: wat de afgesloten casussen van {report["year"]}
het systeem leren, en wat de organisaties met de signalen deden.
Gegenereerd op {escape(report["generated_at"][:19])}.</p>
<div class="kpi">
<div><b>{report["cases_closed"]}</b>afgesloten casussen</div>
<div><b>{_num(weeks["average"])}</b>gemiddelde doorlooptijd (weken)</div>
<div><b>{_num(weeks["median"])}</b>mediane doorlooptijd (weken)</div>
<div><b>{sum(r["n"] for r in report["learning_points_by_order"])}</b>leerpunten</div>
</div>
<h2>Afgesloten casussen per maand</h2>{_counts(report, "closed_per_month")}
{timeline_chart(report["closed_per_month"], title="Afgesloten casussen per maand")}
{"".join(sections)}
<h2>Signalen per organisatie en opvolging</h2>
{_table(["Organisatie", "Totaal", *[r["label"] for r in report["follow_up"]]], org_rows)}
<h2>Voorbeelden van genomen maatregelen</h2>
{_table(["Organisatie", "Orde", "Knelpunt", "Regeling", "Maatregel"], examples)}
</body></html>
"""


def _counts(report: dict[str, Any], section: str) -> str:
    """The line under a chart's title that says what it counts."""
    counted = report.get("counted", {}).get(section)
    return f'<p class="counts">Telt: {escape(counted)}</p>' if counted else ""


def _num(value: float | None) -> str:
    return "n.v.t." if value is None else f"{value:.1f}".replace(".", ",")
