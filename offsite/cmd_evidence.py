"""Subcommands: Evidence store: verify chains and signatures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Evidence store: verify chains and signatures.")


def parse_time(text: str) -> datetime:
    """ISO 8601; a time without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def verify(
    since: str = typer.Option(None, help="check records fixed at or after this ISO time "
                                         "(each chain anchored on the record before)"),
    public_key: Path = typer.Option(None, "--public-key", exists=True, dir_okay=False,
                                    help="trust only this public key (PEM or hex), not the "
                                         "evidence_keys table"),
    heads: Path = typer.Option(None, exists=True, dir_okay=False,
                               help="heads saved by an earlier --save-heads: a chain that "
                                    "ends before its saved head lost its tail"),
    save_heads: Path = typer.Option(None, help="write each chain's head (seq, hash) here"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object instead of text"),
) -> None:
    """Re-hash every item and check every chain and signature; exit 1 on any problem."""
    from contract.settings import get_settings
    from storage.evidence_chain import ChainHead
    from storage.evidence_store import verify_database

    settings = get_settings()
    if not settings.database_url:
        raise typer.BadParameter("set OFFSITE_DATABASE_URL")
    expected = None
    if heads is not None:
        expected = {s: ChainHead(s, int(h["seq"]), h["record_hash"])
                    for s, h in json.loads(heads.read_text())["heads"].items()}
    trusted = [public_key.read_text()] if public_key is not None else None
    report = verify_database(settings.database_url, folder=settings.evidence_folder,
                             since=parse_time(since) if since else None,
                             trusted_keys=trusted, expected_heads=expected)
    head_map = {s: {"seq": h.seq, "record_hash": h.record_hash}
                for s, h in sorted(report.heads.items())}
    if save_heads is not None:
        save_heads.write_text(json.dumps({"heads": head_map}, indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps({
            "ok": report.ok, "checked": report.checked, "heads": head_map,
            "issues": [{"record": i.record_id, "source": i.source, "seq": i.seq,
                        "problem": i.problem, "detail": i.detail} for i in report.issues],
        }, indent=2))
    else:
        for i in report.issues:
            seq = "?" if i.seq is None else i.seq
            typer.echo(f"FAIL {i.problem:<17} record {i.record_id or '-'} "
                       f"(source {i.source}, seq {seq}): {i.detail}")
        state = "OK" if report.ok else f"FAILED: {len(report.issues)} problem(s)"
        typer.echo(f"{state}: {report.checked} record(s) in {len(report.heads)} chain(s) checked")
    if not report.ok:
        raise typer.Exit(1)


@app.command("public-key")
def public_key_cmd(
    hex_form: bool = typer.Option(False, "--hex", help="raw key as hex instead of PEM"),
) -> None:
    """Print the public key that signs evidence (made in the state folder on first use)."""
    from contract.settings import get_settings
    from storage.evidence_chain import EvidenceSigner

    signer = EvidenceSigner.load_or_create(get_settings().state_dir)
    typer.echo(signer.public_hex() if hex_form else signer.public_pem().rstrip("\n"))
