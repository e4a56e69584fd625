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
    public_key: list[Path] = typer.Option(None, "--key", "--public-key", exists=True,
                                          dir_okay=False,
                                          help="also trust this public key (PEM or hex); "
                                               "repeatable"),
    heads: Path = typer.Option(None, exists=True, dir_okay=False,
                               help="heads saved by an earlier --save-heads, checked besides "
                                    "the heads the writers keep in the state folder"),
    save_heads: Path = typer.Option(None, help="write each chain's head (seq, hash) here"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object instead of text"),
) -> None:
    """Re-hash every item and check every chain and signature; exit 1 on any problem.

    Trusted keys: ``OFFSITE_EVIDENCE_TRUSTED_KEYS``, every ``--key``, and the state folder's
    own key; never the ``evidence_keys`` table. Chain heads: the state folder's
    ``evidence_heads.json`` (kept by the writers) and ``--heads``; a chain that ends before
    either lost its newest records.
    """
    from contract.settings import get_settings
    from storage.evidence_chain import ChainHead, key_id_of
    from storage.evidence_store import verify_database
    from storage.evidence_trust import HeadsFile, heads_json, trusted_keys

    settings = get_settings()
    if not settings.database_url:
        raise typer.BadParameter("set OFFSITE_DATABASE_URL")
    try:
        keys = trusted_keys(settings.state_dir, settings.evidence_trusted_keys,
                            [p.read_text() for p in public_key or []])
    except ValueError as exc:
        typer.echo(f"FAIL unreadable key: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not keys:
        typer.echo(f"FAIL no trusted key: {settings.state_dir.resolve()} holds no evidence key "
                   "and none is pinned (OFFSITE_EVIDENCE_TRUSTED_KEYS) or given (--key); set "
                   "OFFSITE_STATE_DIR to the folder given to `offsite up`", err=True)
        raise typer.Exit(2)
    expected = HeadsFile(settings.state_dir).read()
    if heads is not None:
        for s, h in json.loads(heads.read_text())["heads"].items():
            saved = ChainHead(s, int(h["seq"]), h["record_hash"])
            if s not in expected or saved.seq > expected[s].seq:
                expected[s] = saved
    report = verify_database(settings.database_url, folder=settings.evidence_folder,
                             since=parse_time(since) if since else None,
                             trusted_keys=keys, expected_heads=expected)
    head_map = heads_json(report.heads)
    if save_heads is not None:
        save_heads.write_text(json.dumps({"heads": head_map}, indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps({
            "ok": report.ok, "checked": report.checked, "heads": head_map,
            "issues": [{"record": i.record_id, "source": i.source, "seq": i.seq,
                        "problem": i.problem, "detail": i.detail} for i in report.issues],
        }, indent=2))
    else:
        typer.echo(f"trusted key(s): {', '.join(sorted({key_id_of(k) for k in keys}))}; "
                   f"{len(expected)} chain head(s) expected "
                   f"({HeadsFile(settings.state_dir).path}{', --heads' if heads else ''})")
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
    """Print the public key that signs evidence (made in the state folder on first use).

    Refuses (exit 2) to make a key where the database already holds evidence: the state
    folder is then not the one the writers use.
    """
    from contract.settings import get_settings
    from storage.evidence_trust import WrongStateFolder, signer_for

    settings = get_settings()
    try:
        signer = signer_for(settings.database_url, settings.state_dir)
    except WrongStateFolder as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    typer.echo(signer.public_hex() if hex_form else signer.public_pem().rstrip("\n"))
