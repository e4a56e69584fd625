"""What a person reads about a clue: its title and its severity, decided in one place.

Clue ids (``video:DEMO-CAM-1:zone/room/person:20261205T232829``) are keys, not names. Every
answer that carries a clue (list, detail, live stream) gets from here:

* ``severity``: ``high``, ``medium`` or ``low`` (``severity``); falsification and camera
  tampering are high, so are large exceedances and large land changes;
* ``title_key`` and ``title_args``: a message of the pages' message files
  (``web/static/i18n/<lang>.json``, key ``title.<kind>``) and its arguments, so a page
  renders the title in the viewer's language without asking again;
* ``title``: that message rendered here, in the language the caller asked for (``lang``,
  default Simplified Chinese), for clients that are not the pages.

Pure functions of the clue row (and the registry names the query joins in): no database,
no clock. The counts by severity (``GET /clues/counts``) group rows on the quantised inputs
``storage.access.SEVERITY_INPUTS`` and call ``severity`` once per group, so the thresholds
below lie on that grid (ratio steps of 0.1, area steps of 0.1 in log10).
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

Severity = Literal["high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low")
LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"
MESSAGES = Path(__file__).resolve().parent.parent / "web" / "static" / "i18n"

# Falsification of data and tampering with a camera: whoever did it meant to hide something.
# Treatment switched off under production, or production in a declared shutdown, and a
# sampler reading far below its neighbours (blocked or sprayed): all meant to hide something.
_HIGH = {"impossible", "replay", "flag_abuse", "inconsistent", "occlusion", "defocus", "shift",
         "treatment_off", "production_in_shutdown", "interference"}
_MEDIUM = {"offline", "signal_loss", "unregistered_source", "flatline", "near_limit", "person",
           "loitering", "line_crossing", "treatment_idle", "meter_offline", "straw_burning",
           "open_fire", "local_source"}
_SATELLITE = {"vegetation_to_built", "vegetation_loss", "bare_or_built", "water_gain",
              "water_loss"}
_FIRE = {"straw_burning", "open_fire"}
HIGH_RATIO = 1.5  # exceedance: worst window mean over the limit
HIGH_AREA_M2 = 10_000.0  # satellite change: 1 ha
MEDIUM_AREA_M2 = 1_000.0

POLLUTANTS = {
    "a34004": "PM2.5", "a34002": "PM10", "a21026": "SO₂", "a21004": "NO₂", "a21005": "CO",
    "a05024": "O₃", "a21002": "NOx", "a34013": "PM", "a19001": "O₂", "w01018": "COD",
    "w21003": "NH₃-N", "w21011": "TP", "w21001": "TN", "w01001": "pH",
}
UNITS = {"ug/m3": "µg/m³", "mg/m3": "mg/m³", "mg/L": "mg/L", "mg/l": "mg/L"}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def severity(kind: str, ratio: float | None = None, area_m2: float | None = None) -> Severity:
    """Severity from the kind and, for exceedances and land changes, how large they are."""
    if kind == "exceedance":
        return "high" if ratio is not None and ratio >= HIGH_RATIO else "medium"
    if kind in _SATELLITE:
        if area_m2 is None:
            return "medium"
        return ("high" if area_m2 >= HIGH_AREA_M2 else
                "medium" if area_m2 >= MEDIUM_AREA_M2 else "low")
    if kind in _HIGH:
        return "high"
    if kind in _MEDIUM:
        return "medium"
    return "low"


def severity_of(clue: dict[str, Any]) -> Severity:
    metrics = clue.get("metrics") or {}
    top, limit = _num(metrics.get("max_mean")), _num(metrics.get("limit"))
    ratio = top / limit if top is not None and limit else None
    return severity(str(clue.get("kind")), ratio, _num(metrics.get("area_m2")))


def _fmt(value: Any) -> str:
    num = _num(value)
    if num is None:
        return "" if value is None else str(value)
    return f"{num:.4g}" if abs(num) < 1e6 else f"{num:.0f}"


def _code_of(clue: dict[str, Any]) -> str:
    """The pollutant code of an env rule (``GB3095-2012/II/a34004/24h``, ``flatline/a21026``)."""
    for part in str(clue.get("rule", "")).split("/"):
        if re.fullmatch(r"[aw]\d{5}", part.split("-")[0]):
            return part.split("-")[0]
    return ""


def _zone(clue: dict[str, Any]) -> str:
    """Where the clue is, as a person names it: the registry zone it lies in (a farmland
    parcel, a water source), else its jurisdiction (by name when the registry has it)."""
    zones = [z for z in clue.get("zones") or [] if isinstance(z, dict)]
    for z in zones:
        if z.get("kind") != "jurisdiction":
            return str(z.get("name") or z.get("id") or "")
    if zones:
        return str(zones[-1].get("name") or zones[-1].get("id") or "")
    return str(clue.get("jurisdiction_name") or clue.get("jurisdiction") or "")


def describe(clue: dict[str, Any]) -> dict[str, Any]:
    """``severity``, ``title_key`` and ``title_args`` of a clue row (as the API lists it)."""
    kind = str(clue.get("kind", ""))
    metrics = clue.get("metrics") or {}
    subject = str(clue.get("subject", ""))
    name = clue.get("resource_name") or ""
    code = _code_of(clue)
    rule = str(clue.get("rule", ""))
    args: dict[str, str] = {
        "place": f"{name} {subject}".strip() if name and name != subject else subject,
        "kind": kind, "subject": subject,
        "pollutant": POLLUTANTS.get(code, code) if code else "",
        "zone": _zone(clue),
    }
    if kind in ("exceedance", "near_limit"):
        args.update(value=_fmt(metrics.get("max_mean", metrics.get("window_mean"))),
                    limit=_fmt(metrics.get("limit")),
                    unit=UNITS.get(str(metrics.get("unit", "")), str(metrics.get("unit", ""))),
                    averaging=str(metrics.get("averaging", "")).replace("h", " h"))
    elif kind in ("interference", "local_source"):  # station mean vs neighbours' median
        args.update(value=_fmt(metrics.get("value")), limit=_fmt(metrics.get("limit")))
    elif kind == "offline":
        gap = _num(metrics.get("gap_s"))
        args["hours"] = _fmt(round(gap / 3600, 1)) if gap is not None else "?"
    elif kind == "signal_loss":
        off = _num(metrics.get("offline_s"))
        args["minutes"] = _fmt(round(off / 60, 1)) if off is not None else "?"
    elif kind in ("treatment_off", "treatment_idle", "production_in_shutdown",
                  "meter_offline"):
        span = _num(metrics.get("duration_s", metrics.get("gap_s")))
        args.update(channel=str(metrics.get("channel") or ""),
                    meter=str(metrics.get("meter") or ""),
                    level=str(metrics.get("level") or ""),
                    minutes=_fmt(round(span / 60)) if span is not None else "?",
                    hours=_fmt(round(span / 3600, 1)) if span is not None else "?")
    elif kind in _SATELLITE:
        area = _num(metrics.get("area_m2"))
        args["area"] = _fmt(round(area / 10_000, 2)) if area is not None else "?"
    elif kind in _FIRE:  # FIRMS fire events (detectors.fire): hotspots, strongest FRP
        args.update(detections=_fmt(metrics.get("detections")),
                    frp=_fmt(metrics.get("max_frp")), zone=args["zone"] or subject)
    elif kind in ("person", "motion", "loitering", "line_crossing"):
        parts = rule.split("/")  # the camera's own zone or line: zone/<name>/<kind>
        if len(parts) > 2 and parts[0] in ("zone", "line"):
            args["zone"] = parts[1]
    key = f"title.{kind}" if kind in _known_kinds() else "title.other"
    return {"severity": severity_of(clue), "title_key": key, "title_args": args}


def render(key: str, args: dict[str, str], lang: str = DEFAULT_LANG) -> str:
    """A message of ``web/static/i18n/<lang>.json`` with ``{name}`` replaced from ``args``."""
    text = messages(lang if lang in LANGS else DEFAULT_LANG).get(key, key)
    return re.sub(r"\{(\w+)\}", lambda m: args.get(m.group(1), ""), text).strip()


def titled(clue: dict[str, Any], lang: str = DEFAULT_LANG) -> dict[str, Any]:
    """The clue row with ``severity``, ``title_key``, ``title_args`` and ``title`` added."""
    out = {**clue, **describe(clue)}
    out["title"] = render(out["title_key"], out["title_args"], lang)
    return out


def pick_lang(lang: str | None, accept_language: str | None = None) -> str:
    """``lang`` if it is one we have, else the first match of Accept-Language, else zh-CN."""
    for cand in [lang or "", *(p.split(";")[0].strip() for p in
                               (accept_language or "").split(","))]:
        for have in LANGS:
            if cand and (cand.lower() == have.lower()
                         or cand.lower().split("-")[0] == have.lower().split("-")[0]):
                return have
    return DEFAULT_LANG


@lru_cache(maxsize=len(LANGS))
def messages(lang: str) -> dict[str, str]:
    return json.loads((MESSAGES / f"{lang}.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _known_kinds() -> frozenset[str]:
    return frozenset(k.removeprefix("title.") for k in messages(DEFAULT_LANG)
                     if k.startswith("title."))
