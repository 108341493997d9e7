"""`pmm-signalen`: run the service (HTTP API and Kafka consumers).

`pmm-signalen report --year 2026 --format html [--output FILE]`: write the yearly report
(jaarrapportage systeemleren) from this service's database, without starting consumers.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from pmm_runtime.mongo import create_client
from pmm_runtime.serve import serve
from pmm_signalen.adapters.figures import YearlyFigures
from pmm_signalen.app import create_app
from pmm_signalen.service import render
from pmm_signalen.service.report import yearly_report
from pmm_signalen.settings import SignalenSettings


async def write_report(
    settings: SignalenSettings, year: int, fmt: str, *, refresh: bool = False
) -> str:
    client = create_client(settings.mongodb_url, app_name="pmm-signalen-report")
    try:
        db = client[settings.database_name]
        figures = YearlyFigures(db["figures"], db["measures"], [db["signals"], db["cases"]])
        report = await yearly_report(figures, year, refresh=refresh)
    finally:
        await client.close()
    if fmt == "html":
        return render.to_html(report)
    if fmt == "csv":
        return render.to_csv(report)
    return render.to_json(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pmm-signalen", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (default)")
    report = commands.add_parser("report", help="write the yearly report")
    report.add_argument("--year", type=int, required=True)
    report.add_argument("--format", choices=["json", "csv", "html"], default="html")
    report.add_argument("--output", type=Path, default=None, help="file; default stdout")
    report.add_argument(
        "--refresh", action="store_true", help="apply pending figure deltas first (full scan)"
    )
    args = parser.parse_args(argv)
    settings = SignalenSettings()
    if args.command == "report":
        text = asyncio.run(write_report(settings, args.year, args.format, refresh=args.refresh))
        if args.output:
            args.output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 0
    serve(create_app(settings), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
