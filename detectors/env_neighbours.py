"""Neighbour rules for ambient air stations: each station against its neighbours' consensus.

Judging an ambient station (HJ 212 ST 22) alone makes every regional pollution episode look
like a spike. Particulate matter is a regional pollutant: secondary aerosol and transported
dust cover tens to hundreds of kilometres, so stations of one city rise and fall together
hour by hour. What a single station does *differently* from its neighbours is what an
inspector wants to see:

* ``interference``: far below its neighbours for hours while they are high: a blocked,
  covered or water-sprayed sampler (the pattern of China's 2016-2018 tampering cases);
* ``local_source``: far above its neighbours: a source next to the station.

Neighbours are the ``max_neighbours`` nearest ambient stations within ``radius_km`` (geodesic
distance on WGS84, pyproj). 50 km: hourly PM2.5 of stations in one city correlate strongly
within a few tens of km and lose that beyond about 50 km, where other cities' plumes and
terrain take over; it also spans an urban area plus its suburban stations (Beijing's 12
national stations are 4 to 60 km apart).

The consensus of an hour is robust: the median of the neighbours' hour means and the scaled
MAD (1.4826 MAD) of them, in log space, ``ln(x + offset)``. PM concentrations are
log-normal and errors and dilution are multiplicative (a blocked inlet passes a *share* of
the air), so a log deviation compares like with like at 20 and at 300 µg/m³; ``offset`` (the
order of an analyser's hourly noise, 5 µg/m³) keeps near-zero readings from exploding. The
spread never goes below ``min_log_spread``: hourly PM monitors agree to about +-15 % at best
(HJ 653-2013 asks +-10 % of reference methods, plus siting differences), so a unanimous
neighbourhood does not turn a 20 % difference into a large score.

The station's own relation to its neighbours is learnt too: a suburban station is cleaner
than the city every day, and its difference wanders more than the city stations' among
themselves. ``EpisodeTracker.judge`` keeps the station's last ``history_h`` unflagged
residuals (30 days) and scores ``z = (residual - their median) / max(neighbour spread,
their 1.4826 MAD)``: the threshold scales with the neighbours' spread and the station's own.

An hour is flagged when ``|z| >= z_extend`` (3) *and* the absolute difference is one that
matters (``min_difference``, the Grade I 24 h limits; interference only while the
neighbours' median is over ``high``, the Grade II 24 h limit: a sampler hidden on clean days
hides nothing). Flagged hours, with gaps up to ``max_gap_h``, form a run; it becomes a clue
once it has ``min_hours`` (6) flagged hours of which ``min_strong`` (5) are beyond
``|z| >= z`` (5). One hour proves nothing: real Beijing residuals have heavy tails (0.1 %
of station-hours beyond -10), fronts and plumes reach stations hours apart; a quarter of a
day of strong disagreement is longer than a front takes to cross the 50 km. Stations
without ``min_neighbours`` reporting in an hour are not judged that hour.

Pure: hour summaries in, clues out; time comes with the data. The offline CLI
(``env_contract.analyze_jsonl`` with sites) and the stream's region stage
(``streams.env_region``) both use ``NeighbourMap`` for the neighbour sets, ``consensus``
for an hour and ``EpisodeTracker`` (JSON state) for the episodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field
from pyproj import Geod

AMBIENT = "22"
PM25, PM10 = "a34004", "a34002"
_GEOD = Geod(ellps="WGS84")


class NeighbourConfig(BaseModel):
    """Thresholds of the neighbour rules (see the module doc for why these values)."""

    radius_km: float = 50.0
    max_neighbours: int = 6
    min_neighbours: int = Field(default=3, description="reporting neighbours an hour needs")
    codes: tuple[str, ...] = Field(
        default=(PM25, PM10), description="regional pollutants; NO2, CO and O3 are dominated"
        " by traffic next to the inlet and by titration, so their neighbours disagree anyway")
    offset: float = 5.0
    min_log_spread: float = Field(default=math.log(1.15) / 0.6745,
                                  description="spread floor: +-15 % agreement at one MAD")
    z: float = 5.0
    z_extend: float = Field(default=3.0, description="|z| that flags an hour of an episode")
    min_strong: int = Field(default=5, description="hours at |z| >= z an episode needs")
    high_per_episode: bool = Field(
        default=False, description="interference: the neighbours' median over the episode"
        " (not each hour) must be over ``high``")
    high: dict[str, float] = Field(default_factory=lambda: {PM25: 75.0, PM10: 150.0})
    min_difference: dict[str, float] = Field(default_factory=lambda: {PM25: 35.0, PM10: 50.0})
    min_hours: dict[str, int] = Field(
        default_factory=lambda: {"interference": 6, "local_source": 6},
        description="flagged hours an episode needs: a quarter of a day, longer than a"
        " plume front takes to cross the 50 km between city and suburbs (2-3 h at"
        " 5 m/s), which is what shorter disagreements on real data mostly are")
    history_h: int = Field(default=720, description="hours of the station's own residuals")
    min_history_h: int = Field(default=48, description="residuals needed before judging")
    max_gap_h: int = 2
    update_every_h: int = 24


@dataclass(frozen=True)
class Site:
    """A station's place in the registry."""

    id: str
    lon: float
    lat: float
    st: str | None = AMBIENT

    @property
    def ambient(self) -> bool:
        return (self.st or AMBIENT) == AMBIENT


class NeighbourMap:
    """Each ambient station's nearest ambient neighbours within the radius, nearest first."""

    def __init__(self, sites: Iterable[Site], cfg: NeighbourConfig | None = None) -> None:
        self.cfg = cfg or NeighbourConfig()
        self.sites = {s.id: s for s in sites}
        ambient = [s for s in self.sites.values() if s.ambient]
        self.neighbours: dict[str, list[tuple[str, float]]] = {}
        for s in ambient:
            others = [o for o in ambient if o.id != s.id]
            if not others:
                self.neighbours[s.id] = []
                continue
            _, _, dist = _GEOD.inv([s.lon] * len(others), [s.lat] * len(others),
                                   [o.lon for o in others], [o.lat for o in others])
            near = sorted((d / 1000.0, o.id) for d, o in zip(dist, others, strict=True)
                          if d / 1000.0 <= self.cfg.radius_km)
            self.neighbours[s.id] = [(sid, km) for km, sid in near[:self.cfg.max_neighbours]]

    def of(self, station: str) -> list[str]:
        return [sid for sid, _ in self.neighbours.get(station, [])]

    def judged(self, station: str) -> bool:
        """Whether the station has enough neighbours for the neighbour rules."""
        return len(self.neighbours.get(station, ())) >= self.cfg.min_neighbours

    def note(self, station: str) -> str:
        """What the clue detail says about a station judged alone."""
        n = len(self.neighbours.get(station, ()))
        if station in self.neighbours:
            return (f"judged alone: {n} ambient neighbours within {self.cfg.radius_km:g} km,"
                    f" {self.cfg.min_neighbours} needed")
        return "judged alone: not an ambient station with a known location"


@dataclass(frozen=True)
class Hour:
    """One station-hour against its neighbours, before the station's own history."""

    value: float
    median: float  # the neighbours' median, µg/m³
    residual: float  # ln(x + o) - the neighbours' log centre
    spread: float  # the neighbours' robust log spread (floored)
    neighbours: tuple[str, ...]


def consensus(cfg: NeighbourConfig, value: float,
              neighbour_values: Mapping[str, float]) -> Hour | None:
    """One station-hour against its neighbours, or None with too few reporting."""
    if len(neighbour_values) < cfg.min_neighbours:
        return None
    # a handful of values (``max_neighbours``): plain Python, not numpy, whose per-call
    # overhead made this median most of the region stage's time in the stream
    vals = [math.log(max(v, 0.0) + cfg.offset) for v in neighbour_values.values()]
    centre = _median(vals)
    spread = max(1.4826 * _median([abs(v - centre) for v in vals]), cfg.min_log_spread)
    residual = math.log(max(value, 0.0) + cfg.offset) - centre
    return Hour(value, math.exp(centre) - cfg.offset, residual, spread,
                tuple(sorted(neighbour_values)))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


@dataclass(frozen=True)
class Verdict:
    """One station-hour judged: its z against the band, and what it looks like."""

    value: float
    median: float
    low: float  # the band the station is expected in (back in µg/m³)
    high: float
    z: float
    neighbours: tuple[str, ...]
    kind: str | None  # interference, local_source or None


#: new residuals after which the station's bias and spread are fitted again (a median
#: of 720 values per station-hour would dominate the cost; a day's lag changes nothing)
FIT_EVERY_H = 24
#: hours of context kept before an episode, for the evidence plot
CONTEXT_H = 12
#: hours of an episode kept for the plot (the numbers in the clue cover all of it)
PLOT_H = 14 * 24


class EpisodeTracker:
    """Episodes of one station and code from its hour verdicts, in time order.

    State is a JSON dict (the stream keeps it in a table): ``ctx`` the last hours judged
    (for the plot), ``run`` the current run of flagged hours (``kind``, ``start``, ``last``
    hour, sums of the station's and the neighbours' median values, worst ``z``, ``n``
    flagged hours, ``open`` once it has been emitted, ``pts`` the plotted hours).
    """

    def __init__(self, cfg: NeighbourConfig, state: dict | None = None) -> None:
        self.cfg = cfg
        self.s: dict = state if state is not None else {"ctx": [], "run": None, "last": None,
                                                        "hist": []}

    def judge(self, code: str, h: Hour) -> Verdict | None:
        """The verdict of an hour against the neighbours and the station's own relation to
        them: a suburban station is cleaner than the city every day, and its residual
        wanders more; its median residual (bias) and their spread (MAD) over the last
        ``history_h`` unflagged hours say by how much. None while that history is short."""
        cfg = self.cfg
        if len(self.s["hist"]) < cfg.min_history_h:
            self._remember(h.residual)
            return None
        if self.s.get("fit") is None or self.s["fit"][2] >= FIT_EVERY_H:
            hist = np.asarray(self.s["hist"], float)
            bias = float(np.median(hist))
            self.s["fit"] = [bias, 1.4826 * float(np.median(np.abs(hist - bias))), 0]
        bias, mad, _ = self.s["fit"]
        scale = max(h.spread, mad)
        z = (h.residual - bias) / scale
        centre = math.log(h.median + cfg.offset) + bias
        expected = math.exp(centre) - cfg.offset
        diff = cfg.min_difference.get(code, 0.0)
        kind = None
        high = cfg.high.get(code, 0.0)
        self.s["high"] = high
        if z <= -cfg.z_extend and (cfg.high_per_episode or h.median >= high) \
                and expected - h.value >= diff:
            kind = "interference"
        elif z >= cfg.z_extend and h.value - expected >= diff:
            kind = "local_source"
        if kind is None:
            self._remember(h.residual)
        band = cfg.z * scale
        return Verdict(h.value, h.median, math.exp(centre - band) - cfg.offset,
                       math.exp(centre + band) - cfg.offset, z, h.neighbours, kind)

    def _remember(self, residual: float) -> None:
        if self.s.get("fit") is not None:
            self.s["fit"][2] += 1
        hist = self.s["hist"]
        hist.append(round(residual, 4))  # in place: a copy of 720 values an hour was not free
        if len(hist) > self.cfg.history_h:
            del hist[:len(hist) - self.cfg.history_h]

    def observe(self, hour: float, v: Verdict) -> list[tuple[str, dict]]:
        """Feed the verdict of hour ``hour`` (epoch s); returns (state, run) events."""
        self.s["last"] = hour
        out: list[tuple[str, dict]] = []
        run = self.s["run"]
        point = [hour, v.value, v.low, v.high, v.median]
        if run is not None and (v.kind not in (None, run["kind"])
                                or hour - run["last"] > self.cfg.max_gap_h * 3600):
            out += self._close(run)
            run = None
        if v.kind is not None:
            if run is None:
                run = self.s["run"] = {"kind": v.kind, "start": hour, "last": hour, "n": 0,
                                       "sum_v": 0.0, "sum_m": 0.0, "z": 0.0, "open": False,
                                       "emitted": 0, "pts": list(self.s["ctx"]),
                                       "neighbours": list(v.neighbours)}
            run["last"] = hour
            run["n"] += 1
            run["strong"] = run.get("strong", 0) + (abs(v.z) >= self.cfg.z)
            run["sum_v"] += v.value
            run["sum_m"] += v.median
            run["z"] = v.z if abs(v.z) > abs(run["z"]) else run["z"]
            run["neighbours"] = sorted(set(run["neighbours"]) | set(v.neighbours))
            if not run["open"] and run["n"] >= self.cfg.min_hours[run["kind"]] \
                    and (run["kind"] != "interference"
                         or run["sum_m"] / run["n"] >= self.s.get("high", 0.0)) \
                    and run["strong"] >= self.cfg.min_strong:
                run["open"] = True
                run["emitted"] = run["n"]
                out.append(("open", dict(run)))
            elif run["open"] and run["n"] - run["emitted"] >= self.cfg.update_every_h:
                run["emitted"] = run["n"]
                out.append(("update", dict(run)))
        if run is not None and len(run["pts"]) < PLOT_H:
            run["pts"].append(point)
        self.s["ctx"] = (self.s["ctx"] + [point])[-CONTEXT_H:]
        return out

    def _close(self, run: dict) -> list[tuple[str, dict]]:
        self.s["run"] = None
        return [("closed", run)] if run["open"] else []

    def flush(self) -> list[tuple[str, dict]]:
        """End of a finite series: an open episode stays open (nothing closed it)."""
        return []
