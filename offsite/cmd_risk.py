"""``offsite risk``: recompute and list the risk of regulated entities (for operators).

The API keeps scores current by itself (``api/risk_feed.py``); ``recompute`` is for a
database without a running API, after changing the weights in the settings, or to see at
once what a change does. Both print one tab-separated line per entity.
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from offsite.cmd_registry import connect_database

app = typer.Typer(no_args_is_help=True,
                  help="Risk per regulated entity: recompute the scores, list them.")
USAGE_EXIT = 2


@app.command("recompute")
def recompute(entity: list[str] = typer.Option(None, "--entity", "-e",
                                               help="only this entity (repeatable)")) -> None:
    """Recompute every active entity (or the ones named) now: entity, score, level, clues."""
    from contract.settings import get_settings
    from oversight.risk import RiskWeights
    from storage import risk

    settings = get_settings()
    weights, now = RiskWeights.from_settings(settings), datetime.now(UTC)
    with connect_database() as conn:
        conn.autocommit = True
        done = (risk.recompute(conn, entity, now, weights, settings.risk_history_step)
                if entity else
                risk.recompute_all(conn, now, weights, settings.risk_history_step) or [])
    for result in done:
        typer.echo(result.line())
    missing = sorted(set(entity or ()) - {r.entity for r in done})
    for name in missing:
        typer.echo(f"{name}: no such entity", err=True)
    typer.echo(f"{len(done)} entit{'y' if len(done) == 1 else 'ies'} recomputed", err=True)
    if missing:
        raise typer.Exit(1)


@app.command("list")
def list_(level: str = typer.Option(None, help="low, medium or high"),
          department: str = typer.Option(None, help="owner department"),
          limit: int = typer.Option(50, min=1)) -> None:
    """Entities by score, highest first: entity, score, level, credit class, owner, name."""
    from storage import risk

    if level not in (None, "low", "medium", "high"):
        typer.echo(f"--level {level}: use low, medium or high", err=True)
        raise typer.Exit(USAGE_EXIT)
    with connect_database() as conn:
        rows = risk.ranked(conn, level, department, limit)
    typer.echo("entity\tscore\tlevel\tcredit\towner\tclues\tcomputed_at\tname")
    for ent, name, credit, owner, score, lvl, clues, at in rows:
        when = at.astimezone(UTC).isoformat(timespec="seconds") if at else "-"
        typer.echo(f"{ent}\t{score:.2f}\t{lvl}\t{credit or '-'}\t{owner or '-'}\t{clues}"
                   f"\t{when}\t{name}")
