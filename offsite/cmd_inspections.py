"""``offsite inspections``: random inspection draws and joint inspections from the command line.

``draw`` does what ``POST /inspections/draws`` does (same storage call, same audit entry,
the user being ``cli:<login>``) on the database of ``OFFSITE_DATABASE_URL`` and prints the
public list; ``--out`` writes it as a CSV (UTF-8 with a BOM, so Excel shows Chinese names)
to publish. ``verify`` recomputes a draw from its recorded seed and inputs; ``merge`` groups
open tasks into joint inspections.
"""

from __future__ import annotations

import asyncio
import csv
import getpass
import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(no_args_is_help=True,
                  help="Random inspection draws (double random, one public), joint inspections.")
USAGE_EXIT = 2
CSV_COLUMNS = ("draw_id", "department", "rank", "entity", "entity_name", "inspector_1",
               "inspector_2", "planned_date", "inspection_id", "visit_date")


def run_on_pool(work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``work(pool)`` on a pool of ``OFFSITE_DATABASE_URL`` (exit 2 when unset)."""
    from contract.settings import get_settings
    from storage.db import open_pool

    url = get_settings().database_url
    if not url:
        typer.echo("set OFFSITE_DATABASE_URL (or use `offsite up`)", err=True)
        raise typer.Exit(USAGE_EXIT)

    async def main() -> Any:
        pool = await open_pool(url, max_size=2)
        try:
            return await work(pool)
        finally:
            await pool.close()

    return asyncio.run(main())


def _day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        typer.echo(f"{name}: not a date YYYY-MM-DD: {text!r}", err=True)
        raise typer.Exit(USAGE_EXIT) from exc


def write_csv(draw: dict[str, Any], out: Path) -> None:
    with out.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for i in draw["items"]:
            w.writerow([draw["id"], draw["department"], i["rank"], i["entity"], i["entity_name"],
                        *i["inspectors"], i["planned_date"], i["inspection_id"],
                        i["visit_date"] or ""])


@app.command("draw")
def draw(department: str = typer.Option(..., "--department", help="department id"),
         start: str = typer.Option(..., "--from", help="first day, YYYY-MM-DD"),
         end: str = typer.Option(..., "--to", help="last day (included), YYYY-MM-DD"),
         count: int | None = typer.Option(None, "--count", min=0,
                                          help="default: expected count from the rates"),
         seed: int | None = typer.Option(None, "--seed", min=0, help="default: random"),
         out: Path | None = typer.Option(None, "--out", help="write the public list as CSV"),
         ) -> None:
    """Draw a department's random inspections for a period and print the public list."""
    from contract.settings import get_settings
    from oversight.draws import DrawError
    from storage import inspections as store

    first, last = _day(start, "--from"), _day(end, "--to")
    if last < first:
        typer.echo("--to is before --from", err=True)
        raise typer.Exit(USAGE_EXIT)
    the_seed = seed if seed is not None else secrets.randbelow(2**63)
    user = {"id": f"cli:{getpass.getuser()}", "department": department}

    async def work(pool: Any) -> tuple[dict[str, Any] | None, bool]:
        if not await store.department_exists(pool, department):
            return None, False
        draw_id, made = await store.create_draw(
            pool, department=department, start=first, end=last, seed=the_seed, count=count,
            settings=get_settings(), user=user)
        return await store.get_draw(pool, draw_id), made

    try:
        result, made = run_on_pool(work)
    except DrawError as exc:
        typer.echo(f"cannot draw: {exc}", err=True)
        raise typer.Exit(1) from exc
    if result is None:
        typer.echo(f"no department {department!r}", err=True)
        raise typer.Exit(USAGE_EXIT)
    for i in result["items"]:
        typer.echo(f"{i['planned_date']}  {i['entity']}  {i['entity_name']}  "
                   f"{' + '.join(i['inspectors'])}")
    typer.echo(f"draw {result['id']} ({'new' if made else 'existing'}): {result['drawn']} of "
               f"expected {result['expected_count']:.2f}, seed {result['seed']}", err=True)
    if out is not None:
        write_csv(result, out)


@app.command("verify")
def verify(draw_id: int = typer.Argument(..., help="draw id")) -> None:
    """Recompute a draw from its recorded seed and inputs; exit 1 if it differs."""
    from storage import inspections as store

    record = run_on_pool(lambda pool: store.draw_record(pool, draw_id))
    if record is None:
        typer.echo(f"no draw {draw_id}", err=True)
        raise typer.Exit(USAGE_EXIT)
    same = store.recompute(record).as_rows() == record["items"]
    typer.echo(f"draw {draw_id}: {'reproduced' if same else 'DIFFERS'} from seed {record['seed']}")
    if not same:
        raise typer.Exit(1)


@app.command("merge")
def merge() -> None:
    """Group open tasks at one entity in overlapping windows into joint inspections."""
    from contract.settings import get_settings
    from storage import inspections as store

    offset = get_settings().local_utc_offset_hours
    for group in run_on_pool(lambda pool: store.merge_all(pool, offset)):
        typer.echo(json.dumps(group, ensure_ascii=False))
