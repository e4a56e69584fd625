"""Subcommands: HJ 212 frames: parse and build."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import timedelta, timezone
from pathlib import Path
from typing import IO, Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True, help="HJ 212 frames: parse and build.")

#: Keys of every output line, in order (the command's contract).
OUTPUT_KEYS = ("ok", "error", "crc_valid", "crc_variant", "length_valid", "version", "QN",
               "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO", "data_time", "values", "extra")


def parse_utc_offset(text: str) -> timezone:
    """``+08:00``, ``+0800`` or ``-05:30`` -> a fixed-offset timezone."""
    match = re.fullmatch(r"([+-])([0-9]{2}):?([0-9]{2})", text.strip())
    if match is None or int(match.group(2)) > 23 or int(match.group(3)) > 59:
        raise typer.BadParameter(f"{text!r} is not an offset like +08:00")
    minutes = int(match.group(2)) * 60 + int(match.group(3))
    return timezone(timedelta(minutes=-minutes if match.group(1) == "-" else minutes))


def not_a_frame(reason: str) -> dict[str, Any]:
    """The output line for input that is no frame at all: every field empty."""
    out: dict[str, Any] = dict.fromkeys(OUTPUT_KEYS)
    out.update(ok=False, error=reason, crc_valid=False, length_valid=False, values={},
               extra={})
    return out


def parse_lines(lines: Iterable[bytes], tz: timezone) -> Iterator[dict[str, Any]]:
    """One output object per non-blank input line; never raises for bad input."""
    from ingest.hj212.codec import HJ212Error, parse_frame

    for line in lines:
        if not line.strip():
            continue
        try:
            yield parse_frame(line, tz=tz).to_json_dict()
        except HJ212Error as exc:
            yield not_a_frame(str(exc))
        except Exception as exc:  # a bug must not stop the replay of a capture
            yield not_a_frame(f"internal error: {type(exc).__name__}")


def _binary(stream: IO[Any]) -> IO[bytes]:
    return getattr(stream, "buffer", stream)


PARSE_HELP = (
    "Parse HJ 212 frames, one per line (CRLF or bare LF), into one JSON object per line."
    "\n\nKeys: ok, error, crc_valid, crc_variant, length_valid, version, QN, ST, CN, PW, MN,"
    " Flag, PNUM, PNO, data_time, values, extra."
    "\n\nok is true only for a frame with the standard's CRC, a correctly counted length and"
    " a well-formed header; other frames are still parsed, with error saying why they are"
    " not ok (a Modbus CRC shows in crc_variant). A line that is no frame gives ok false"
    " with the reason and empty fields."
    "\n\nBlank lines are skipped (no output line): they carry nothing, and an error line"
    " for each would only add noise."
)


@app.command("parse", help=PARSE_HELP)
def parse(
    file: Annotated[Path | None, typer.Argument(
        exists=True, dir_okay=False, readable=True,
        help="File with one frame per line; standard input when left out.")] = None,
    utc_offset: Annotated[str, typer.Option(
        "--utc-offset", help="Offset of the stations' local time (DataTime, QN).")] = "+08:00",
) -> None:
    """Print one JSON object per frame (see PARSE_HELP for the contract)."""
    tz = parse_utc_offset(utc_offset)
    out = _binary(sys.stdout)
    if file is None:
        objects = parse_lines(_binary(sys.stdin), tz)
        for obj in objects:
            out.write(json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n")
    else:
        with file.open("rb") as handle:
            for obj in parse_lines(handle, tz):
                out.write(json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n")
    out.flush()
