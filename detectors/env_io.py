"""Readers that turn sensor CSV files into ``Reading`` records for offline analysis.

Values are converted to the units the limits table uses (HJ 212 conventions: ambient µg/m³
except CO in mg/m³), so the Beijing file's CO, given in µg/m³, is divided by 1000 here.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from contract.input_rules import check_time
from contract.records import Reading

BEIJING_CODES: dict[str, tuple[str, float]] = {
    "PM2.5": ("a34004", 1.0), "PM10": ("a34002", 1.0), "SO2": ("a21026", 1.0),
    "NO2": ("a21004", 1.0), "CO": ("a21005", 0.001), "O3": ("a05024", 1.0),
}


def read_beijing(path: Path | str, station: str,
                 utc_offset_hours: float = 8.0) -> Iterator[Reading]:
    """UCI Beijing multi-site rows (local time, one per hour); all-NA rows send no reading."""
    tz = timezone(timedelta(hours=utc_offset_hours))
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            values = {code: float(row[col]) * scale
                      for col, (code, scale) in BEIJING_CODES.items()
                      if row.get(col) not in (None, "", "NA")}
            if not values:
                continue
            when = datetime(int(row["year"]), int(row["month"]), int(row["day"]),
                            int(row["hour"]), tzinfo=tz)
            yield Reading(station=station, time=when, period="hour", values=values,
                          source="csv", interval_s=3600)


def read_generic(path: Path | str, station: str, utc_offset_hours: float = 8.0,
                 period: str = "hour") -> Iterator[Reading]:
    """A ``time`` column (ISO 8601; naive means station-local) and one column per HJ 212 code.

    Optional ``<code>-Flag`` columns carry data flags; an optional ``station`` column filters
    rows to the requested station; empty cells are missing values.
    """
    tz = timezone(timedelta(hours=utc_offset_hours))
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("station") and row["station"] != station:
                continue
            when = datetime.fromisoformat(row["time"])
            if when.tzinfo is None:
                when = when.replace(tzinfo=tz)
            check_time(when, "time")  # offline: valid and within 1970..2100 (else ValueError)
            values: dict[str, float] = {}
            flags: dict[str, str] = {}
            for key, raw in row.items():
                if key in ("time", "station") or raw in (None, "", "NA"):
                    continue
                if key.endswith("-Flag"):
                    flags[key[:-5]] = raw.strip()
                else:
                    values[key] = float(raw)
            if values:
                yield Reading(station=station, time=when, period=period,  # type: ignore[arg-type]
                              values=values, flags=flags, source="csv")


def contract_lines(readings: Iterable[Reading], st: str = "22") -> Iterator[str]:
    """The ``env analyze`` JSON lines of readings (one line per value), for tools and tests
    that turn a CSV record into the CLI's input."""
    for r in readings:
        for code, value in r.values.items():
            line = {"station": r.station, "st": st, "time": r.time.isoformat(), "code": code,
                    "value": value}
            if r.flags.get(code, "N") != "N":
                line["flag"] = r.flags[code]
            yield json.dumps(line)
