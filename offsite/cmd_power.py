"""Subcommands: power monitoring of pollution-control equipment, offline."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True,
                  help="Power monitoring of pollution-control equipment (用电监控): offline.")


@app.callback()
def _group() -> None:
    """Keep ``power`` a command group even while it has a single subcommand."""


@app.command()
def analyze(
    path: Annotated[Path, typer.Argument(
        exists=True, dir_okay=False,
        help="readings: env JSON lines {station: meter, time, code: channel, value: kW}")],
    channels: Annotated[Path, typer.Option(
        "--channels", exists=True, dir_okay=False,
        help="power_channels.csv: entity,meter,channel,role,rated_kw,idle_kw")],
    shutdowns: Annotated[Path | None, typer.Option(
        "--shutdowns", exists=True, dir_okay=False,
        help="shutdowns.csv: scope,level,start,end (scope: an entity id)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="write clues here (JSON lines)")]
    = None,
    evidence_dir: Annotated[Path | None, typer.Option(
        "--evidence-dir", help="render the PNG plots of both sides and write them here")]
    = None,
) -> None:
    """Run the power rules over a readings file on its own timeline; clues as JSON lines.

    Output: one object per clue (latest state of its episode) with kind (treatment_off,
    treatment_idle, production_in_shutdown, meter_offline), station (the meter), code,
    start, end, standard (null), limit, value, detail, entity and channel.
    """
    from pydantic import ValidationError

    from contract.settings import get_settings
    from detectors.env_contract import InputError
    from detectors.power import Channel, PowerConfig, Shutdown
    from detectors.power_contract import analyze_jsonl, latest_per_episode, to_contract
    from geo.registry_check import read_file

    faults = []
    rows, got = read_file(channels, "power_channel")
    faults += got
    declared = []
    if shutdowns is not None:
        declared, got = read_file(shutdowns, "shutdown")
        faults += got
    if faults:
        for fault in faults:
            typer.echo(str(fault), err=True)
        raise typer.Exit(2)
    chans = [Channel(**{k: v for k, v in e.fields.items() if v is not None}) for e in rows]
    stops = [Shutdown(e.fields["scope"], e.fields["level"], e.fields["start"], e.fields["end"])
             for e in declared]
    s = get_settings()
    config = PowerConfig(grace_s=s.power_grace_s, min_episode_s=s.power_min_episode_s,
                         stale_s=s.power_stale_s, offline_s=s.power_offline_s,
                         idle_ratio=s.power_idle_ratio)
    plots: dict[str, object] = {}
    try:
        with path.open(encoding="utf-8") as fh:
            clues = analyze_jsonl(fh, chans, stops, config,
                                  on_plot=(lambda ref, plot: plots.__setitem__(
                                      id(ref), plot)) if evidence_dir else None)
    except (InputError, ValidationError) as exc:
        typer.echo(f"bad input: {exc}", err=True)
        raise typer.Exit(2) from None
    clues = latest_per_episode(clues)
    if evidence_dir is not None:
        evidence_dir.mkdir(parents=True, exist_ok=True)
        for clue in clues:
            for item in clue.evidence:
                plot = plots.get(id(item))
                if plot is None:
                    continue
                item.content = plot.render()  # type: ignore[attr-defined]
                stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{clue.clue_id}_{clue.state}")
                target = evidence_dir / f"{stem}.png"
                target.write_bytes(item.content)
                item.sha256 = hashlib.sha256(item.content).hexdigest()
                item.name = str(target)
    sink = out.open("w", encoding="utf-8") if out else sys.stdout
    try:
        for clue in clues:
            sink.write(json.dumps(to_contract(clue), ensure_ascii=False) + "\n")
    finally:
        if out:
            sink.close()
    counts = Counter(clue.kind for clue in clues)
    typer.echo(f"{len(clues)} clues: " + ", ".join(f"{k} {n}" for k, n in counts.most_common()),
               err=True)
