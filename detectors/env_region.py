"""The neighbour rules over hour summaries: clues, spike deferral and the stations file.

``RegionJudge`` turns the hour means of a region's stations into ``interference`` and
``local_source`` clue events (``env_neighbours`` has the rules and why). It keeps one
``EpisodeTracker`` state per (station, code) in a JSON dict, so the stream's region stage
can keep it in a table; the offline CLI feeds it every hour of a file in time order.

The spike rule defers to the neighbours: at a station with enough neighbours, spike clues
of the regional pollutants are not raised (a spike the neighbours share is weather; one
they do not share is a ``local_source``). At a station judged alone, spikes stay and their
detail says why (``defer_spikes``).

Clue ids are (station, rule, episode start hour): judging the same hours again (a
redelivery, a rerun) gives the same ids.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from contract.clue import Clue, EvidenceRef
from contract.records import Reading
from detectors.env_alike import UsualResidual
from detectors.env_config import DETECTOR, VERSION
from detectors.env_episodes import EpisodeTracker, joint_evidence
from detectors.env_neighbours import (
    PM10,
    PM25,
    Hour,
    NeighbourMap,
    Site,
    Verdict,
    consensus_of_logs,
    log_value,
)
from detectors.plots import OnPlot, SeriesPlot, plot_evidence

HOUR = 3600.0
KINDS = ("interference", "local_source")


def read_sites(path: Path | str) -> list[Site]:
    """Stations from a registry ``stations.csv`` (``id,name,lon,lat,st``; UTF-8 with or
    without BOM, else GB18030 as Excel writes it in China). Rows without coordinates are
    skipped: they cannot have neighbours."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030")
    sites = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            lon, lat = float(row["lon"]), float(row["lat"])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(lon) and math.isfinite(lat):
            sites.append(Site(row["id"].strip(), lon, lat, (row.get("st") or "22").strip()))
    return sites


def hour_means(readings: Iterable[Reading], codes: Sequence[str]) -> dict[tuple[str, float],
                                                                         float]:
    """Mean of the valid (flag N) values of each (code, hour start) of one station."""
    sums: dict[tuple[str, float], list[float]] = defaultdict(lambda: [0.0, 0])
    for r in readings:
        if r.event == "restart":
            continue
        hour = math.floor(r.time.timestamp() / HOUR) * HOUR
        for code in codes:
            v = r.values.get(code)
            if v is not None and math.isfinite(v) and r.flags.get(code, "N") == "N":
                acc = sums[(code, hour)]
                acc[0] += v
                acc[1] += 1
    return {k: s / n for k, (s, n) in sums.items()}


class RegionJudge:
    """Judges hours of a set of stations against their neighbours; state is JSON."""

    def __init__(self, nmap: NeighbourMap, state: dict[str, Any] | None = None, *,
                 utc_offset_hours: float = 8.0, evidence: bool = False,
                 on_plot: OnPlot | None = None) -> None:
        self.nmap = nmap
        self.cfg = nmap.cfg
        self.s: dict[str, Any] = state if state is not None else {}
        self.tz = timezone(timedelta(hours=utc_offset_hours))
        self.evidence = evidence
        #: where evidence plots go: None renders them here and now; a callback gets the
        #: (still empty) EvidenceRef and what to draw (the stream sends the clue first)
        self.on_plot = on_plot

    def judge_hour(self, code: str, hour: float, values: dict[str, float],
                   subjects: Iterable[str] | None = None) -> list[Clue]:
        """Clue events of one hour of one code (``judge_hours`` with that code only)."""
        return self.judge_hours(hour, {code: values}, subjects)

    def judge_hours(self, hour: float, by_code: dict[str, dict[str, float]],
                    subjects: Iterable[str] | None = None) -> list[Clue]:
        """Clue events of one hour: ``by_code`` the hour means of every station that
        reported (neighbours included) per code, ``subjects`` the stations to judge (default
        all). A station's channels are judged together (``env_episodes.joint_evidence``);
        the witness codes (``covariates``, CO) in ``by_code`` are not judged, they say what
        the PM residual of the hour is given the station's CO (``EpisodeTracker.judge``)."""
        out: list[Clue] = []
        cov = self.cfg.covariates
        judged_codes = {c: v for c, v in by_code.items() if c not in cov}
        wvalues = by_code.get(cov[0]) if cov else None
        stations = subjects if subjects is not None else \
            dict.fromkeys(s for values in judged_codes.values() for s in values)
        logs: dict[str, dict[str, float]] = {}  # per code: each station's log, taken once
        for station in stations:
            if not self.nmap.judged(station):
                continue
            witness = None
            if wvalues is not None and station in wvalues:
                witness = self._against(station, cov[0], wvalues, logs,
                                        self.cfg.covariate_offset)
            judged: dict[str, tuple[EpisodeTracker, Verdict]] = {}
            residuals: dict[str, float] = {}
            for code, values in judged_codes.items():
                last = (self.s.get(f"{station}/{code}") or {}).get("last")
                if station not in values or (last is not None and hour <= last):
                    continue  # not reported, or judged already (a redelivery)
                h = self._against(station, code, values, logs, self.cfg.offset)
                if h is None:
                    continue
                tracker = EpisodeTracker(self.cfg, self.s.get(f"{station}/{code}"))
                verdict = tracker.judge(code, h, hour, witness)
                tracker.s["last"] = hour
                self.s[f"{station}/{code}"] = tracker.s
                if verdict is not None:
                    judged[code] = (tracker, verdict)
                    residuals[code] = h.residual
            if not judged:
                continue
            evidence = joint_evidence(self.cfg, [v for _, v in judged.values()],
                                      self._alike(station, judged, residuals,
                                                  witness))
            for code, (tracker, verdict) in judged.items():
                for state, run in tracker.observe(code, hour, verdict, evidence, witness):
                    out.append(self._clue(station, code, state, run))
        return out

    def _alike(self, station: str, judged: dict[str, tuple[EpisodeTracker, Verdict]],
               residuals: dict[str, float], witness: Hour | None) -> bool:
        """Whether this hour's disagreement with the neighbours can be a blocked inlet
        (``env_alike``): PM2.5 and PM10 moved alike (their ratio residual within
        ``ratio_z`` of the station's usual) and CO did not fall far under its usual
        residual (``witness_z``): the station breathed the neighbours' air. A check whose
        inputs are missing this hour, or whose history is short, passes. The residuals of
        an unflagged hour go into the station's histories."""
        cfg = self.cfg
        unflagged = all(v.kind is None for _, v in judged.values())
        alike = True
        if PM25 in residuals and PM10 in residuals:
            ratio = UsualResidual(cfg, self.s.get(f"{station}/ratio"))
            d = residuals[PM25] - residuals[PM10]
            z = ratio.z(d)
            alike = z is None or cfg.ratio_z is None or abs(z) <= cfg.ratio_z
            if unflagged:
                ratio.remember(d)
            self.s[f"{station}/ratio"] = ratio.s
        if witness is not None:
            co = UsualResidual(cfg, self.s.get(f"{station}/co"))
            z = co.z(witness.residual)
            alike = alike and (z is None or cfg.witness_z is None or z >= -cfg.witness_z)
            if unflagged:
                co.remember(witness.residual)
            self.s[f"{station}/co"] = co.s
        return alike

    def _against(self, station: str, code: str, values: dict[str, float],
                 logs: dict[str, dict[str, float]], offset: float) -> Hour | None:
        """The station's hour of ``code`` against its neighbours (``consensus``), or None
        with too few reporting; ``logs`` caches the hour's log values per code."""
        nb = [n for n in self.nmap.of(station) if n in values]
        if len(nb) < self.cfg.min_neighbours:
            return None
        cached = logs.get(code)
        if cached is None:
            cached = logs[code] = {s: log_value(v, offset) for s, v in values.items()}
        return consensus_of_logs(self.cfg, values[station], cached[station],
                                 [cached[n] for n in nb], offset, tuple(sorted(nb)))

    def _dt(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, UTC).astimezone(self.tz)

    def _clue(self, station: str, code: str, state: str, run: dict[str, Any]) -> Clue:
        kind = run["kind"]
        mean_v, mean_m = run["sum_v"] / run["n"], run["sum_m"] / run["n"]
        word = "below" if kind == "interference" else "above"
        km = dict(self.nmap.neighbours.get(station, []))
        metrics = {"value": round(mean_v, 2), "limit": round(mean_m, 2), "code": code,
                   "hours": run["n"], "worst_z": round(run["z"], 2),
                   "neighbours": [{"station": n, "km": round(km.get(n, math.nan), 1)}
                                  for n in run["neighbours"]],
                   "radius_km": self.cfg.radius_km}
        if kind == "interference":  # whether CO was the witness, and where it was not
            wh = run.get("wh", 0)
            metrics["co_witness_hours"] = wh
            if wh < run["n"]:
                metrics["witness"] = (f"PM alone in {run['n'] - wh} of {run['n']} h: CO not"
                                      " reported by the station or its neighbours, or too"
                                      " short a paired history")
        end = run["last"] + HOUR
        clue = Clue(modality="env", kind=kind, rule=f"{kind}/{code}", subject=station,
                    state=state, start=self._dt(run["start"]), time=self._dt(run["last"]),
                    end=self._dt(end) if state == "closed" else None,
                    confidence=min(1.0, abs(run["z"]) / (2 * self.cfg.z)), metrics=metrics,
                    summary=f"{code} {mean_v:.0f} far {word} the neighbours' median "
                            f"{mean_m:.0f} for {run['n']} h", detector=DETECTOR,
                    detector_version=VERSION, params={"neighbour_rules": self.cfg.z})
        if self.evidence and state != "update":
            clue.evidence.append(self._plot(station, code, run, end))
        return clue

    def _plot(self, station: str, code: str, run: dict[str, Any], end: float) -> EvidenceRef:
        pts = run["pts"]
        plot = SeriesPlot(f"{station} {run['kind']}/{code} vs {len(run['neighbours'])}"
                          " neighbours", [self._dt(p[0]) for p in pts], [p[1] for p in pts],
                          shade=(self._dt(run["start"]), self._dt(end)),
                          band=[(self._dt(p[0]), p[2], p[3], p[4]) for p in pts])
        return plot_evidence(f"{run['kind']}_{code}.png", plot, self.on_plot)


def defer_spikes(clues: Iterable[Clue], nmap: NeighbourMap) -> list[Clue]:
    """Drop spike clues of the regional pollutants at stations with enough neighbours;
    the spikes kept (judged alone) say so in their metrics."""
    out = []
    for clue in clues:
        code = clue.rule.partition("/")[2]
        if clue.kind == "spike" and code in nmap.cfg.codes:
            if nmap.judged(clue.subject):
                continue
            clue.metrics["neighbour_rules"] = nmap.note(clue.subject)
        out.append(clue)
    return out


def judge_series(per_station: dict[str, list[Reading]], nmap: NeighbourMap, *,
                 utc_offset_hours: float = 8.0, evidence: bool = False,
                 subjects: Sequence[str] | None = None) -> list[Clue]:
    """Offline: every neighbour clue event of whole series, hour by hour in time order
    (of ``subjects`` only, when given; the others count as neighbours)."""
    hours: dict[tuple[str, float], dict[str, float]] = defaultdict(dict)
    for station, readings in per_station.items():
        if not nmap.judged(station) and not any(station in nmap.of(s) for s in per_station):
            continue
        for (code, hour), mean in hour_means(readings, nmap.cfg.all_codes).items():
            hours[(code, hour)][station] = mean
    by_hour: dict[float, dict[str, dict[str, float]]] = defaultdict(dict)
    for (code, hour), values in hours.items():
        by_hour[hour][code] = values
    judge = RegionJudge(nmap, utc_offset_hours=utc_offset_hours, evidence=evidence)
    out: list[Clue] = []
    for hour in sorted(by_hour):
        codes = by_hour[hour]
        out += judge.judge_hours(hour, {c: codes[c] for c in sorted(codes)}, subjects)
    return out
