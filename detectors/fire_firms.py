"""NASA FIRMS active-fire CSV (MODIS and VIIRS column sets) to :class:`FireDetection` rows.

Why a parser of its own: FIRMS writes two column sets -- MODIS (``brightness``,
``bright_t31``, confidence 0-100) and VIIRS (``bright_ti4``, ``bright_ti5``, confidence
``l``/``n``/``h``, sometimes spelt out) -- and one detector serves both, so both become one
record with the confidence on 0-1. A file that is not a FIRMS table at all (no header with
the columns every FIRMS file has, or no usable row) is refused as a whole; a bad row --
numbers that do not parse or lie out of range, bytes that are not UTF-8, a wrong number of
columns -- is refused alone, with its line number, so one damaged line never costs the
other detections.

``acq_date`` + ``acq_time`` are UTC (FIRMS' convention); ``acq_time`` comes as ``HHMM``,
sometimes without its leading zeros (``536``) or as ``HH:MM``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError

from contract.records import FireDetection

REQUIRED = ("latitude", "longitude", "acq_date", "acq_time", "confidence")
#: VIIRS confidence classes (FIRMS: low, nominal, high) on the 0-1 scale of MODIS / 100:
#: MODIS calls < 30 low and >= 80 high, so the classes sit in the middle of those bands.
VIIRS_CONFIDENCE = {"l": 0.3, "low": 0.3, "n": 0.65, "nominal": 0.65, "h": 0.9, "high": 0.9}
#: nominal pixel size (km) when a file leaves out scan/track
NADIR_KM = {"MODIS": 1.0, "VIIRS": 0.375}
MAX_ROWS = 200_000


class FirmsError(ValueError):
    """The file is not a FIRMS active-fire table (said why, for the dead-letter store)."""


@dataclass
class BadRow:
    line: int  # physical line in the file, the header being line 1
    reason: str
    text: str


@dataclass
class FirmsFile:
    """What one FIRMS file holds: its detections, its refused rows and its sha256."""

    instrument: str
    sha256: str
    detections: list[FireDetection] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)


def looks_like_firms(head: bytes) -> bool:
    """Whether a file's first bytes are a FIRMS header (how the inbox tells it from others)."""
    first = head.decode("utf-8-sig", errors="replace").splitlines()[:1]
    if not first:
        return False
    names = {c.strip().lower() for c in first[0].split(",")}
    return {"latitude", "longitude", "acq_date"} <= names


def instrument_of(columns: set[str]) -> str:
    if "bright_ti4" in columns or "bright_ti5" in columns:
        return "VIIRS"
    if "brightness" in columns or "bright_t31" in columns:
        return "MODIS"
    raise FirmsError("neither MODIS (brightness, bright_t31) nor VIIRS (bright_ti4, "
                     "bright_ti5) brightness columns")


def parse_time(date: str, hhmm: str) -> datetime:
    text = hhmm.strip().replace(":", "")
    if not text.isdigit() or len(text) > 4:
        raise ValueError(f"acq_time {hhmm!r} is not HHMM")
    text = text.zfill(4)
    return datetime.strptime(f"{date.strip()} {text}", "%Y-%m-%d %H%M").replace(tzinfo=UTC)


def _number(row: dict[str, str], name: str, default: float | None = None) -> float | None:
    raw = (row.get(name) or "").strip()
    if not raw:
        return default
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"{name} {raw!r} is not a finite number")
    return value


def confidence_of(raw: str, instrument: str) -> float:
    text = raw.strip().lower()
    if text in VIIRS_CONFIDENCE:
        return VIIRS_CONFIDENCE[text]
    value = float(text)
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"confidence {raw!r} is outside 0-100")
    return value / 100.0


def detection(row: dict[str, str], instrument: str) -> FireDetection:
    """One row as a detection; ValueError (or ValidationError) says what is wrong."""
    if any("\ufffd" in (v or "") for v in row.values()):
        raise ValueError("bytes that are not UTF-8 text (or NUL)")
    row_instrument = (row.get("instrument") or instrument).strip().upper() or instrument
    if row_instrument not in NADIR_KM:
        raise ValueError(f"instrument {row_instrument!r} is neither MODIS nor VIIRS")
    nadir = NADIR_KM[row_instrument]
    bright = "brightness" if row_instrument == "MODIS" else "bright_ti4"
    return FireDetection(
        lat=float(row["latitude"]), lon=float(row["longitude"]),
        time=parse_time(row["acq_date"], row["acq_time"]),
        satellite=(row.get("satellite") or "").strip()[:32], instrument=row_instrument,
        confidence=confidence_of(row["confidence"], row_instrument),
        confidence_raw=row["confidence"].strip()[:16],
        frp=_number(row, "frp", 0.0) or 0.0, scan=_number(row, "scan", nadir) or nadir,
        track=_number(row, "track", nadir) or nadir, brightness=_number(row, bright),
        daynight=(row.get("daynight") or "").strip()[:1])


def parse_firms(data: bytes) -> FirmsFile:
    """Every detection of a FIRMS CSV; FirmsError when the file is not one at all."""
    sha = hashlib.sha256(data).hexdigest()
    # bytes that are not UTF-8 (and NUL, which the CSV reader refuses) become U+FFFD, so
    # they cost only the rows they are in (``detection`` refuses those)
    text = data.decode("utf-8-sig", errors="replace").replace("\0", "\ufffd")
    try:
        return _read(csv.DictReader(io.StringIO(text, newline="")), sha)
    except csv.Error as exc:  # a quote or line break the CSV reader cannot place
        raise FirmsError(f"not a readable CSV: {exc}") from None


def _read(reader: csv.DictReader, sha: str) -> FirmsFile:
    columns = {(c or "").strip().lower() for c in reader.fieldnames or ()}
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise FirmsError(f"no FIRMS header: missing column(s) {', '.join(missing)}")
    reader.fieldnames = [(c or "").strip().lower() for c in reader.fieldnames or ()]
    out = FirmsFile(instrument=instrument_of(columns), sha256=sha)
    for n, row in enumerate(reader, start=2):
        if n - 1 > MAX_ROWS:
            raise FirmsError(f"more than {MAX_ROWS} rows")
        if None in row or any(v is None for v in row.values()):
            out.bad_rows.append(BadRow(reader.line_num, "wrong number of columns",
                                       _line(row)))
            continue
        try:
            out.detections.append(detection(row, out.instrument))
        except (ValueError, ValidationError, KeyError) as exc:
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            out.bad_rows.append(BadRow(reader.line_num, reason, _line(row)))
    if out.bad_rows and not out.detections:
        first = out.bad_rows[0]
        raise FirmsError(f"no usable row; line {first.line}: {first.reason}")
    return out


def _line(row: dict[str | None, object]) -> str:
    values = [str(v) for k, v in row.items() if k is not None and v is not None]
    extra = row.get(None)
    if isinstance(extra, list):
        values += [str(v) for v in extra]
    return ",".join(values)[:2000]
