"""``offsite registry``: validate, import and export a province's registry folder.

The folder format is in the README ("Setting up your province") and
``geo/registry_folder.py``. ``validate`` needs no database, so a county can check its files
before sending them; ``import`` applies a folder all or nothing; ``export`` writes the
registry back in the same format, to edit and re-import.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True,
                  help="The resource pool: departments, stations, cameras, scenes, zones, rules.")

FAULTS_EXIT = 1
USAGE_EXIT = 2


def _folder(directory: Path) -> Path:
    if not directory.is_dir():
        typer.echo(f"{directory}: not a folder", err=True)
        raise typer.Exit(USAGE_EXIT)
    return directory


def connect_database():  # type: ignore[no-untyped-def]
    """A connection to ``OFFSITE_DATABASE_URL``; exit 2 (usage) when it is unset."""
    import psycopg

    from contract.settings import get_settings

    url = get_settings().database_url
    if not url:
        typer.echo("set OFFSITE_DATABASE_URL (or use `offsite up`)", err=True)
        raise typer.Exit(USAGE_EXIT)
    return psycopg.connect(url)


@app.command("validate")
def validate(directory: Path = typer.Argument(..., help="registry folder")) -> None:
    """Check a folder without a database; every fault on its own line, FILE:LINE: reason."""
    from contract.settings import get_settings
    from geo.registry_check import validate_folder

    folder, faults = validate_folder(_folder(directory),
                                     default_owner=get_settings().registry_default_owner)
    for fault in faults:
        typer.echo(str(fault))
    if faults:
        typer.echo(f"{len(faults)} fault(s)", err=True)
        raise typer.Exit(FAULTS_EXIT)
    present = folder.present()
    if not present:
        typer.echo(f"{directory}: no registry file in it", err=True)
        raise typer.Exit(USAGE_EXIT)
    typer.echo(f"ok: {', '.join(present)}", err=True)


@app.command("import")
def import_(
    directory: Path = typer.Argument(..., help="registry folder"),
    prune: bool = typer.Option(False, "--prune",
                               help="retire what a present file no longer lists"),
) -> None:
    """Validate, then apply the folder in one transaction (upsert by id); counts per kind."""
    from contract.settings import get_settings
    from storage.registry import Actor, RegistryInvalid, format_counts, import_folder

    owner = get_settings().registry_default_owner
    _folder(directory)
    with connect_database() as conn:
        try:
            result = import_folder(conn, directory, prune=prune, default_owner=owner,
                                   actor=Actor.cli(owner))
        except RegistryInvalid as exc:
            for fault in exc.faults:
                typer.echo(str(fault))
            typer.echo(f"{len(exc.faults)} fault(s); nothing imported", err=True)
            raise typer.Exit(FAULTS_EXIT) from exc
    for line in format_counts(result):
        typer.echo(line)


@app.command("export")
def export(
    directory: Path = typer.Argument(..., help="folder to write (created if missing)"),
    with_secrets: bool = typer.Option(False, "--with-secrets",
                                      help="also write station passwords (HJ 212 PW)"),
) -> None:
    """Write the active registry as a registry folder, ready to edit and import again."""
    from storage.registry import export_folder

    with connect_database() as conn:
        written = export_folder(conn, directory, with_secrets=with_secrets)
    for kind, count in written.items():
        typer.echo(f"{kind}: {count} written")
