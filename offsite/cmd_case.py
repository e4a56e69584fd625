"""Subcommands: Case referral: export one clue with its evidence as a checkable bundle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from geo.routing import Router

app = typer.Typer(no_args_is_help=True,
                  help="Case referral: export a clue with its evidence; verify a bundle.")


@app.command("export")
def export(
    clue_id: str = typer.Argument(..., help="the clue's id, as in the clues table"),
    out: Path = typer.Option(..., "--out", "-o", help="bundle to write (.zip)"),
    zones: Path = typer.Option(None, exists=True, dir_okay=False,
                               help="zones GeoJSON for routing (default: the registry's zones)"),
    rules: Path = typer.Option(None, exists=True, dir_okay=False,
                               help="routing rules CSV (default: the registry's rules)"),
) -> None:
    """Write manifest.json, the media, public_key.pem and report.html into one zip."""
    from contract.settings import get_settings
    from storage.case_bundle import bundle_digest, export_case

    settings = get_settings()
    if not settings.database_url:
        raise typer.BadParameter("set OFFSITE_DATABASE_URL")
    router = None
    if zones is not None or rules is not None:
        router = _router(settings.database_url, zones, rules)
    try:
        result = export_case(settings.database_url, clue_id, out,
                             folder=settings.evidence_folder, router=router)
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"{result.path}: {result.items} evidence item(s), {result.links} chain link(s),"
               f" sha256 {bundle_digest(result.path)}")
    if result.missing:
        typer.echo(f"content missing for {', '.join(result.missing)}", err=True)
        raise typer.Exit(1)


@app.command("verify")
def verify(
    bundle: Path = typer.Argument(..., exists=True, dir_okay=False),
    public_key: Path = typer.Option(None, "--public-key", exists=True, dir_okay=False,
                                    help="a key obtained out of band (PEM or hex) instead of "
                                         "the bundle's own"),
) -> None:
    """Check a bundle alone: file hashes, record hashes, signatures, chain; exit 1 if bad."""
    from storage.case_bundle import verify_bundle

    report = verify_bundle(bundle, public_key.read_text() if public_key else None)
    for problem in report.problems:
        typer.echo(f"FAIL {problem}")
    typer.echo(("OK" if report.ok else f"FAILED: {len(report.problems)} problem(s)")
               + f": {report.checked} record(s) checked")
    if not report.ok:
        raise typer.Exit(1)


def _router(database_url: str, zones: Path | None, rules: Path | None) -> Router:
    """Zones and rules from the files given, the rest from the database registry."""
    import psycopg

    from geo.registry import rule_from_row, zone_from_row
    from geo.routing import Router, load_rules
    from geo.zones import ZoneIndex
    from storage.registry import routing_rule_rows, zone_rows

    with psycopg.connect(database_url) as conn:
        index = (ZoneIndex.from_geojson(zones) if zones is not None
                 else ZoneIndex(zone_from_row(z) for z in zone_rows(conn)))
        table = (load_rules(rules) if rules is not None
                 else [rule_from_row(r) for r in routing_rule_rows(conn)])
    return Router(index, table)
