"""The command-line contract of ``offsite env analyze`` (issue 4, item 6), on the stream's code.

Input: JSON lines ``{"station", "st", "time" (ISO 8601 with offset), "code", "value",
"flag" (optional, default "N")}`` in time order, one value per line. Lines of one station
with the same time become one ``Reading`` (as one HJ 212 frame carries several codes), so the
monitors see exactly what the stream's ``env.readings`` records would give them. Optional
keys: ``period`` (rtd/minute/hour/day; default the CLI's ``--period``) and ``event``:
``{"station", "time", "event": "restart"}`` is a logger restart (HJ 212 CN 2081), noted
before a gap.

With a stations file (``--stations``: ``id,name,lon,lat,st``, the registry's
``stations.csv``) ambient stations are also judged against their neighbours
(``env_neighbours``): kinds ``interference`` and ``local_source``, one clue per station, code
and episode, ``value`` the station's mean over the episode, ``limit`` the neighbours' median
over it, ``standard`` null and the neighbours in ``detail.neighbours``. Then lines may come
in any order across stations (each station's own lines in time order): every station is read
before any is judged, and ``station`` filters the output only.

Output: one JSON object per clue (the latest state of each episode), with exactly the keys of
``CONTRACT_KEYS``. ``start``/``end`` are ISO 8601 in the station's local offset; for window
rules (exceedance, near_limit, flag masking) ``end`` is the end of the last window, exclusive
(the next local midnight for a daily standard), for point rules the last observation. The
rule, episode state, summary and the numbers behind the verdict are in ``detail``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from contract.clue import Clue
from contract.input_rules import check_time
from contract.records import Reading
from detectors.env import StationMonitor
from detectors.env_config import EnvConfig, StationInfo
from detectors.env_neighbours import NeighbourConfig, NeighbourMap, Site
from detectors.env_region import defer_spikes, judge_series

KINDS = ("exceedance", "flatline", "offline", "near_limit", "impossible", "inconsistent",
         "replay", "flag_abuse", "spike", "interference", "local_source")
CONTRACT_KEYS = ("kind", "station", "code", "start", "end", "standard", "limit", "value",
                 "detail")
#: Older or internal kind names, mapped onto the contract vocabulary.
KIND_MAP = {"hugging": "near_limit", "inconsistency": "inconsistent", "dilution": "inconsistent"}

_CODE = re.compile(r"\b([aw]\d{5})")


class InputError(ValueError):
    """A bad input line; the message names the line number."""


def read_jsonl(lines: Iterable[str], default_period: str = "hour",
               interval_s: int | None = None) -> Iterator[tuple[str | None, Reading]]:
    """``(st, reading)`` per station and instant; a restart line gives a reading with
    ``event="restart"`` and no values, as the HJ 212 server sends for CN 2081."""
    pending: dict[str, Any] | None = None

    def emit(p: dict[str, Any]) -> tuple[str | None, Reading]:
        reading = Reading(station=p["station"], time=p["time"], period=p["period"],
                          values=p["values"], flags=p["flags"], source="jsonl",
                          interval_s=interval_s, event=p["event"])
        return p["st"], reading

    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            station = str(obj["station"])
            when = datetime.fromisoformat(obj["time"])
            if when.tzinfo is None:
                raise ValueError("time has no UTC offset")
            check_time(when, "time")  # offline: valid and within 1970..2100
            event = obj.get("event")
            if event is not None and event != "restart":
                raise ValueError(f"unknown event {event!r}")
            code = None if event else str(obj["code"])
            value = None if event else float(obj["value"])
            flag = str(obj.get("flag") or "N")
            period = str(obj.get("period") or default_period)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"line {no}: {exc}") from exc
        key = (station, when, period, "restart" if event else "jsonl")
        if pending is not None and pending["key"] != key:
            yield emit(pending)
            pending = None
        if pending is None:
            pending = {"key": key, "station": station, "time": when, "period": period,
                       "values": {}, "flags": {}, "st": obj.get("st"), "event": event}
        if code is not None and value is not None:
            pending["values"][code] = value
            if flag != "N":
                pending["flags"][code] = flag
        if pending["st"] is None and obj.get("st") is not None:
            pending["st"] = obj["st"]
    if pending is not None:
        yield emit(pending)


def analyze_jsonl(lines: Iterable[str], config: EnvConfig | None = None, *,
                  standard: str | None = None, utc_offset_hours: float = 8.0,
                  adopted_from: Any = None, default_period: str = "hour",
                  interval_s: int | None = None, default_st: str = "22",
                  station: str | None = None, sites: list[Site] | None = None,
                  neighbours: NeighbourConfig | None = None) -> list[Clue]:
    """Every clue event of a JSON-lines file, one ``StationMonitor`` per station (only
    ``station``'s when given). A line's ``st`` picks the default standard, else the stations
    file's (``sites``), else ``default_st``; ``standard`` overrides them all. With ``sites``
    the neighbour rules run too (every station's hours count, ``station`` or not)."""
    if sites is not None:
        return _analyze_with_neighbours(
            lines, config, sites, neighbours, station=station, default_st=default_st,
            info=dict(standard=standard, utc_offset_hours=utc_offset_hours,
                      adopted_from=adopted_from, interval_s=interval_s),
            default_period=default_period)
    monitors: dict[str, StationMonitor] = {}
    out: list[Clue] = []
    for st, reading in read_jsonl(lines, default_period, interval_s):
        if station is not None and reading.station != station:
            continue
        mon = monitors.get(reading.station)
        if mon is None:
            info = StationInfo(id=reading.station, st=str(st) if st is not None else default_st,
                               standard=standard, utc_offset_hours=utc_offset_hours,
                               adopted_from=adopted_from, interval_s=interval_s)
            mon = monitors[reading.station] = StationMonitor(info, config)
        out += mon.observe(reading)  # a restart event is noted there, no clue
    for mon in monitors.values():
        out += mon.flush()
    return out


def _analyze_with_neighbours(lines: Iterable[str], config: EnvConfig | None,
                             sites: list[Site], neighbours: NeighbourConfig | None, *,
                             station: str | None, default_st: str, info: dict[str, Any],
                             default_period: str) -> list[Clue]:
    """Read every station first (lines in any order across stations), then run each
    station's monitor and the neighbour rules over all of them."""
    per_station: dict[str, list[Reading]] = {}
    line_st: dict[str, str] = {}
    for st, reading in read_jsonl(lines, default_period, info["interval_s"]):
        per_station.setdefault(reading.station, []).append(reading)
        if st is not None:
            line_st.setdefault(reading.station, str(st))
    known = {s.id: s for s in sites}
    located = [Site(s.id, s.lon, s.lat, line_st.get(s.id, s.st)) for s in sites]
    nmap = NeighbourMap(located, neighbours)
    out: list[Clue] = []
    for sid, readings in per_station.items():
        if station is not None and sid != station:
            continue
        st = line_st.get(sid) or (known[sid].st if sid in known else None) or default_st
        mon = StationMonitor(StationInfo(id=sid, st=st, **info), config)
        out += mon.observe_many(readings) + mon.flush()
    out = defer_spikes(out, nmap)
    evidence = config.evidence if config is not None else True
    region = judge_series(per_station, nmap, utc_offset_hours=info["utc_offset_hours"],
                          evidence=evidence, subjects=None if station is None else [station])
    return out + region


def contract_kind(kind: str) -> str:
    return KIND_MAP.get(kind, kind)


def clue_code(clue: Clue) -> str | None:
    """The HJ 212 code a clue is about, from its rule; None for station-level rules."""
    found = _CODE.search(clue.rule)
    return found.group(1) if found else None


def _value(kind: str, m: dict[str, Any]) -> float | None:
    if kind == "exceedance":
        return m.get("max_mean", m.get("window_mean"))
    if kind == "near_limit":
        return m.get("max_mean")
    if kind == "offline":
        return m.get("gap_s")
    if kind == "flag_abuse":
        return m.get("all_values_mean", m.get("share"))
    if kind == "inconsistent":
        for key in ("reported_corrected", "nox", "o2"):
            if key in m:
                return m[key]
        return None
    if kind == "replay":
        return m.get("block")
    return m.get("value")


def _end(clue: Clue) -> datetime:
    windows = clue.metrics.get("windows")
    windows = windows if isinstance(windows, list) else []
    ends = [w["t1"] for w in windows if isinstance(w, dict) and "t1" in w]
    if ends:
        return datetime.fromtimestamp(max(ends), UTC).astimezone(clue.start.tzinfo)
    return clue.end or clue.time


def to_contract(clue: Clue) -> dict[str, Any]:
    """One output object of the contract for one clue (its latest state)."""
    kind = contract_kind(clue.kind)
    m = clue.metrics
    station_level = kind in ("offline", "replay")
    detail: dict[str, Any] = {
        "rule": clue.rule, "state": clue.state, "summary": clue.summary,
        "confidence": clue.confidence, "detector_kind": clue.kind,
        "metrics": {k: v for k, v in m.items() if not isinstance(v, list) or k != "windows"}}
    if isinstance(m.get("windows"), list):
        detail["windows"] = [{k: v for k, v in w.items() if k not in ("t0", "t1")}
                             for w in m["windows"]]
    if kind in ("interference", "local_source"):
        detail["neighbours"] = m.get("neighbours", [])
    if clue.evidence:
        detail["evidence"] = [e.model_dump(exclude={"content"}) for e in clue.evidence]
    return {
        "kind": kind,
        "station": clue.subject,
        "code": None if station_level else clue_code(clue),
        "start": clue.start.isoformat(),
        "end": _end(clue).isoformat(),
        "standard": m.get("standard") or clue.params.get("standard"),
        "limit": m.get("limit"),
        "value": _value(kind, m),
        "detail": detail,
    }
