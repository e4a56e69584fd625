"""Subcommands: Case referral: export one clue with its evidence as a checkable bundle."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True,
                  help="Case referral: export a clue with its evidence; verify a bundle.")


@app.command("export")
def export(
    clue_id: str = typer.Argument(..., help="the clue's id, as in the clues table"),
    out: Path = typer.Option(..., "--out", "-o", help="bundle to write (.zip)"),
) -> None:
    """Write manifest.json (signed: manifest.sig), media, public_key.pem and report.html.

    Keys and media come from the state folder (``OFFSITE_STATE_DIR``, the folder given to
    ``offsite up``); the clue's routing is the one stored when it was routed.
    """
    from contract.settings import get_settings
    from storage.case_bundle import bundle_digest, export_case
    from storage.evidence_trust import WrongStateFolder, signer_for

    settings = get_settings()
    if not settings.database_url:
        raise typer.BadParameter("set OFFSITE_DATABASE_URL")
    try:
        signer = signer_for(settings.database_url, settings.state_dir)
        result = export_case(settings.database_url, clue_id, out, signer=signer,
                             folder=settings.evidence_folder,
                             trusted_keys=settings.evidence_trusted_keys)
    except (LookupError, WrongStateFolder) as exc:
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
    """Check a bundle alone: manifest signature, file hashes, records, chain; exit 1 if bad."""
    from storage.case_verify import verify_bundle

    report = verify_bundle(bundle, public_key.read_text() if public_key else None)
    for problem in report.problems:
        typer.echo(f"FAIL {problem}")
    typer.echo(("OK" if report.ok else f"FAILED: {len(report.problems)} problem(s)")
               + f": {report.checked} record(s) checked")
    if not report.ok:
        raise typer.Exit(1)
