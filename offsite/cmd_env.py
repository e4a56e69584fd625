"""Subcommands: Environmental readings: analyze files offline."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Environmental readings: analyze files offline.")


@app.callback()
def _group() -> None:
    """Keep ``env`` a command group even while it has a single subcommand."""


class Format(StrEnum):
    auto = "auto"
    jsonl = "jsonl"
    beijing = "beijing"
    generic = "generic"


@app.command()
def analyze(
    path: Annotated[Path, typer.Argument(
        exists=True, dir_okay=False,
        help="readings: JSON lines {station, st, time, code, value, flag} or a sensor CSV")],
    out: Annotated[Path | None, typer.Option("--out", help="write clues here (JSON lines)")]
    = None,
    fmt: Annotated[Format, typer.Option(
        "--format", help="auto: .csv is beijing (UCI), anything else jsonl; generic: CSV with "
        "a time column and one column per HJ 212 code")] = Format.auto,
    station: Annotated[str | None, typer.Option(
        "--station", help="station id (needed for CSV; filters JSON lines)")] = None,
    standard: Annotated[str | None, typer.Option("--standard", help="e.g. GB3095-2012/II")]
    = None,
    st: Annotated[str, typer.Option("--st", help="HJ 212 ST when a line has none: picks the "
                                    "default standard")] = "22",
    utc_offset: Annotated[float, typer.Option("--utc-offset", help="station-local offset, h")]
    = 8.0,
    period: Annotated[str, typer.Option("--period", help="rtd/minute/hour/day of the data")]
    = "hour",
    interval: Annotated[int | None, typer.Option(
        "--interval", help="declared reporting interval, s (default: learnt from the data)")]
    = None,
    adopted_from: Annotated[str | None, typer.Option(
        "--adopted-from", help="date the region applied the standard (YYYY-MM-DD); GB 3095-2012 "
        "applies from 2016-01-01 otherwise")] = None,
    evidence_dir: Annotated[Path | None, typer.Option(
        "--evidence-dir", help="render PNG evidence and write it here")] = None,
    events: Annotated[bool, typer.Option("--events", help="every open/update/closed event")]
    = False,
    stations: Annotated[Path | None, typer.Option(
        "--stations", exists=True, dir_okay=False,
        help="stations file (id,name,lon,lat,st: the registry's stations.csv): ambient "
        "stations are judged against their neighbours too (JSON lines input)")] = None,
    full: Annotated[bool, typer.Option(
        "--full", help="write the full clue records of the stream instead of the contract")]
    = False,
) -> None:
    """Run the env detectors over a file on its own timeline and write clues as JSON lines.

    Output (the contract): one object per clue with kind (exceedance, flatline, offline,
    near_limit, impossible, inconsistent, replay, flag_abuse, spike; with --stations also
    interference and local_source), station, code (null for station-level clues), start,
    end (ISO 8601), standard, limit, value and detail.
    """
    from pydantic import ValidationError

    from detectors.env import analyze_series, final_clues
    from detectors.env_config import EnvConfig, StationInfo
    from detectors.env_contract import InputError, analyze_jsonl, to_contract
    from detectors.env_io import read_beijing, read_generic
    from detectors.env_region import read_sites

    adopted = date.fromisoformat(adopted_from) if adopted_from else None
    config = EnvConfig(evidence=evidence_dir is not None)
    if fmt is Format.auto:
        fmt = Format.beijing if path.suffix.lower() == ".csv" else Format.jsonl
    if stations is not None and fmt is not Format.jsonl:
        typer.echo("--stations needs JSON lines input (several stations)", err=True)
        raise typer.Exit(2)
    if fmt is Format.jsonl:
        try:
            sites = read_sites(stations) if stations is not None else None
            with path.open(encoding="utf-8") as fh:
                clues = analyze_jsonl(fh, config, standard=standard, utc_offset_hours=utc_offset,
                                      adopted_from=adopted, default_period=period,
                                      interval_s=interval, default_st=st, station=station,
                                      sites=sites)
        except (InputError, ValidationError, KeyError, UnicodeDecodeError) as exc:
            typer.echo(f"bad input: {exc}", err=True)
            raise typer.Exit(2) from None
    else:
        if station is None:
            typer.echo("--station is needed for CSV input", err=True)
            raise typer.Exit(2)
        info = StationInfo(id=station, st=st, standard=standard, utc_offset_hours=utc_offset,
                           adopted_from=adopted, interval_s=interval)
        if fmt is Format.beijing:
            readings = read_beijing(path, station, utc_offset)
        else:
            readings = read_generic(path, station, utc_offset, period)
        clues = analyze_series(readings, info, config)
    if not events:
        clues = final_clues(clues)
    if evidence_dir is not None:
        evidence_dir.mkdir(parents=True, exist_ok=True)
        for clue in clues:
            for item in clue.evidence:
                stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{clue.clue_id}_{clue.state}")
                target = evidence_dir / f"{stem}.png"
                target.write_bytes(item.content)
                item.sha256 = hashlib.sha256(item.content).hexdigest()
                item.name = str(target)
    exclude = {"evidence": {"__all__": {"content"}}}
    sink = out.open("w", encoding="utf-8") if out else sys.stdout
    try:
        for clue in clues:
            line = (clue.model_dump_json(exclude=exclude) if full
                    else json.dumps(to_contract(clue), ensure_ascii=False))
            sink.write(line + "\n")
    finally:
        if out:
            sink.close()
    counts = Counter(clue.kind if full else to_contract(clue)["kind"] for clue in clues)
    typer.echo(f"{len(clues)} clues: " + ", ".join(f"{k} {n}" for k, n in counts.most_common()),
               err=True)
