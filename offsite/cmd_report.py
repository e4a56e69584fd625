"""``offsite report monthly``: a department's monthly enforcement report (CSV and HTML).

The month is a calendar month in local time (``OFFSITE_LOCAL_UTC_OFFSET_HOURS``); the
figures are those ``GET /stats`` gives for it (``offsite/monthly_report.py`` renders them).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import typer

from offsite.cmd_inspections import USAGE_EXIT, run_on_pool

app = typer.Typer(no_args_is_help=True, help="Reports of enforcement work.")


def month_bounds(month: str, utc_offset_hours: float) -> tuple[datetime, datetime]:
    """``YYYY-MM`` as [first local midnight, next month's first local midnight) in UTC."""
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise ValueError(f"not a month YYYY-MM: {month!r}")
    first = date(int(month[:4]), int(month[5:]), 1)
    after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    tz = timezone(timedelta(hours=utc_offset_hours))
    return (datetime.combine(first, time(), tz).astimezone(UTC),
            datetime.combine(after, time(), tz).astimezone(UTC))


@app.command("monthly")
def monthly(department: str = typer.Option(..., "--department", help="department id"),
            month: str = typer.Option(..., "--month", help="YYYY-MM (local time)"),
            out: Path = typer.Option(..., "--out", help="folder for report.csv, report.html"),
            ) -> None:
    """Write the department's report.csv and report.html for the month into --out."""
    from contract.settings import get_settings
    from offsite import monthly_report
    from storage import coverage
    from storage import tasks as store

    offset = get_settings().local_utc_offset_hours
    try:
        since, until = month_bounds(month, offset)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(USAGE_EXIT) from exc

    async def work(pool: Any) -> dict[str, Any]:
        figures = await store.stats(pool, department, since, until)
        figures["coverage"] = await coverage.coverage(pool, department, since, until,
                                                      datetime.now(UTC), offset)
        return figures

    figures = run_on_pool(work)
    for path in monthly_report.write(figures, department, month, out):
        typer.echo(str(path))
