"""Acquisition date and sensor of a scene file, from its metadata or its name.

Why: the CLI contract reports ``before_date``/``after_date`` and the ingester needs an
acquisition time to order scenes; deliveries carry it in different places. Looked up in
order: dataset tags (``ACQUISITION_DATE``, ``DATE_ACQUIRED``, ``datetime``,
``TIFFTAG_DATETIME`` ...), then band tags, then the file name (Landsat scene IDs
``LE70350322008166EDC00``, Collection IDs ``LC08_L1TP_119038_20200412_...``, Sentinel-2
``..._20200412T023551_...``, a plain ``YYYYMMDD`` or ``YYYY-MM-DD``, finally a bare year
``taizhou_2000``). ``None`` when nothing is found. The result keeps its precision: a
year-only name gives ``"2000"``, not a made-up day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DATE_TAGS = ("ACQUISITION_DATE", "DATE_ACQUIRED", "ACQUISITIONDATE", "DATETIME", "DATE",
             "SENSING_TIME", "PRODUCT_START_TIME", "TIFFTAG_DATETIME", "SCENE_CENTER_TIME")

LANDSAT_SENSORS = {"LC09": "landsat-9", "LC08": "landsat-8", "LO08": "landsat-8",
                   "LE07": "landsat-7", "LT05": "landsat-5", "LT04": "landsat-4",
                   "LC9": "landsat-9", "LC8": "landsat-8", "LE7": "landsat-7",
                   "LT5": "landsat-5", "LT4": "landsat-4"}

_LANDSAT_PRE = re.compile(r"(?<![A-Z0-9])(L[COTEM][4-9])\d{6}(\d{4})(\d{3})[A-Z]{3}\d{2}")
_LANDSAT_C = re.compile(r"(?<![A-Z0-9])(L[COTEM]0[4-9])_[A-Z0-9]{4}_\d{6}_(\d{8})_")
_S2 = re.compile(r"(?<![A-Z0-9])(S2[ABC])_.*?_(\d{8})T(\d{6})")
_YMD_SEP = re.compile(r"(?<!\d)((?:19|20)\d{2})[-_.](\d{2})[-_.](\d{2})(?!\d)")
_YMD = re.compile(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})(?:T(\d{6}))?(?!\d)")
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")


@dataclass(frozen=True)
class SceneDate:
    """An acquisition date as text of its real precision plus a UTC datetime for ordering."""

    text: str
    time: datetime
    source: str  # "tag:<NAME>", "band-tag:<NAME>" or "filename"


def _ok(y: int, m: int = 1, d: int = 1) -> datetime | None:
    try:
        t = datetime(y, m, d, tzinfo=UTC)
    except ValueError:
        return None
    return t if 1972 <= y <= 2100 else None


def parse_date_text(value: str) -> tuple[str, datetime] | None:
    """A date out of a tag value: ISO 8601, ``YYYY:MM:DD HH:MM:SS`` (TIFF) or ``YYYYMMDD``."""
    v = value.strip()
    m = re.match(r"^(\d{4})[-:/](\d{2})[-:/](\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?", v)
    if m:
        t = _ok(int(m[1]), int(m[2]), int(m[3]))
        if t is None:
            return None
        if m[4]:
            t = t.replace(hour=int(m[4]), minute=int(m[5]), second=int(m[6] or 0))
        return f"{m[1]}-{m[2]}-{m[3]}", t
    m = _YMD.search(v)
    if m and (t := _ok(int(m[1]), int(m[2]), int(m[3]))):
        return f"{m[1]}-{m[2]}-{m[3]}", t
    return None


def date_from_name(name: str) -> tuple[str, datetime] | None:
    """A date out of a file name (see the module docstring for the patterns)."""
    stem = Path(name).name
    up = stem.upper()
    m = _LANDSAT_PRE.search(up)
    if m and (t := _ok(int(m[2]))):
        t = t + timedelta(days=int(m[3]) - 1)
        if t.year == int(m[2]):
            return t.date().isoformat(), t
    for rx in (_LANDSAT_C, _S2):
        m = rx.search(up)
        if m:
            d = m[2]
            if t := _ok(int(d[:4]), int(d[4:6]), int(d[6:])):
                return t.date().isoformat(), t
    for rx in (_YMD_SEP, _YMD):
        m = rx.search(stem)
        if m and (t := _ok(int(m[1]), int(m[2]), int(m[3]))):
            return t.date().isoformat(), t
    m = _YEAR.search(stem)
    if m and (t := _ok(int(m[1]))):
        return m[1], t
    return None


def sensor_from_name(name: str, tags: dict[str, str] | None = None) -> str:
    """``landsat-7``, ``sentinel-2a`` ... from tags (SENSOR, SPACECRAFT_ID) or the name."""
    for key in ("SENSOR", "SPACECRAFT_ID", "PLATFORM", "SATELLITE"):
        if tags and tags.get(key):
            return tags[key].strip().lower()
    up = Path(name).name.upper()
    if m := _LANDSAT_C.search(up):
        return LANDSAT_SENSORS.get(m[1], "landsat")
    if m := _LANDSAT_PRE.search(up):
        return LANDSAT_SENSORS.get(m[1], "landsat")
    if m := _S2.search(up):
        return f"sentinel-{m[1][1:].lower()}"
    return "unknown"


def date_from_tags(tags: dict[str, str], prefix: str) -> SceneDate | None:
    upper = {k.upper(): v for k, v in tags.items()}
    for key in DATE_TAGS:
        if upper.get(key):
            got = parse_date_text(upper[key])
            if got:
                return SceneDate(got[0], got[1], f"{prefix}:{key}")
    return None


def scene_date(path: str | Path, ds: Any | None = None) -> SceneDate | None:
    """Acquisition date of a raster file: dataset tags, band tags, then the file name."""
    import rasterio

    def from_ds(d: Any) -> SceneDate | None:
        found = date_from_tags(d.tags(), "tag")
        if found:
            return found
        for i in range(1, d.count + 1):
            found = date_from_tags(d.tags(i), "band-tag")
            if found:
                return found
        return None

    found = None
    try:
        if ds is not None:
            found = from_ds(ds)
        else:
            with rasterio.open(path) as d:
                found = from_ds(d)
    except Exception:  # unreadable metadata: fall back to the name
        found = None
    if found:
        return found
    got = date_from_name(str(path))
    return SceneDate(got[0], got[1], "filename") if got else None
