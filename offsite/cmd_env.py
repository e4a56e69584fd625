"""Subcommands: Environmental readings: analyze files offline."""

from __future__ import annotations

import hashlib
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
    beijing = "beijing"
    generic = "generic"


@app.command()
def analyze(
    csv_path: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                             help="sensor CSV file")],
    station: Annotated[str, typer.Option("--station", help="station id (clue subject)")],
    fmt: Annotated[Format, typer.Option("--format", help="beijing (UCI) or generic")]
    = Format.beijing,
    out: Annotated[Path | None, typer.Option("--out", help="write clues here (JSON lines)")]
    = None,
    standard: Annotated[str | None, typer.Option("--standard", help="e.g. GB3095-2012/II")]
    = None,
    st: Annotated[str, typer.Option("--st", help="HJ 212 ST: picks the default standard")]
    = "22",
    utc_offset: Annotated[float, typer.Option("--utc-offset", help="station-local offset, h")]
    = 8.0,
    period: Annotated[str, typer.Option("--period", help="generic: rtd/minute/hour/day")]
    = "hour",
    adopted_from: Annotated[str | None, typer.Option(
        "--adopted-from", help="date the region applied the standard (YYYY-MM-DD)")] = None,
    evidence_dir: Annotated[Path | None, typer.Option(
        "--evidence-dir", help="render PNG evidence and write it here")] = None,
    events: Annotated[bool, typer.Option("--events", help="every open/update/closed event")]
    = False,
) -> None:
    """Run the env detector over a file on its own timeline and write clues as JSON lines."""
    from detectors.env import analyze_series, final_clues
    from detectors.env_config import EnvConfig, StationInfo
    from detectors.env_io import read_beijing, read_generic

    info = StationInfo(id=station, st=st, standard=standard, utc_offset_hours=utc_offset,
                       adopted_from=date.fromisoformat(adopted_from) if adopted_from else None)
    if fmt is Format.beijing:
        readings = read_beijing(csv_path, station, utc_offset)
    else:
        readings = read_generic(csv_path, station, utc_offset, period)
    clues = analyze_series(readings, info, EnvConfig(evidence=evidence_dir is not None))
    if not events:
        clues = final_clues(clues)
    if evidence_dir is not None:
        evidence_dir.mkdir(parents=True, exist_ok=True)
        for clue in clues:
            for item in clue.evidence:
                stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{clue.clue_id}_{clue.state}")
                path = evidence_dir / f"{stem}.png"
                path.write_bytes(item.content)
                item.sha256 = hashlib.sha256(item.content).hexdigest()
                item.name = str(path)
    exclude = {"evidence": {"__all__": {"content"}}}
    sink = out.open("w", encoding="utf-8") if out else sys.stdout
    try:
        for clue in clues:
            sink.write(clue.model_dump_json(exclude=exclude) + "\n")
    finally:
        if out:
            sink.close()
    counts = Counter(c.kind for c in clues)
    typer.echo(f"{len(clues)} clues: " + ", ".join(f"{k} {n}" for k, n in counts.most_common()),
               err=True)
