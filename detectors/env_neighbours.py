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

How the hours' scores become episodes (evidence that accumulates over hours and over both
PM channels, a one-sided CUSUM per kind) is ``env_episodes``'s part.

Pure: hour summaries in, clues out; time comes with the data. The offline CLI
(``env_contract.analyze_jsonl`` with sites) and the stream's region stage
(``streams.env_region``) both use ``NeighbourMap`` for the neighbour sets, ``consensus``
for an hour and ``env_episodes.EpisodeTracker`` (JSON state) for the episodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from pyproj import Geod

AMBIENT = "22"
PM25, PM10 = "a34004", "a34002"
CO = "a21005"
_GEOD = Geod(ellps="WGS84")


class NeighbourConfig(BaseModel):
    """Thresholds of the neighbour rules (see the module doc for why these values)."""

    radius_km: float = 50.0
    max_neighbours: int = 6
    min_neighbours: int = Field(default=3, description="reporting neighbours an hour needs")
    codes: tuple[str, ...] = Field(
        default=(PM25, PM10), description="regional pollutants; NO2, CO and O3 are dominated"
        " by traffic next to the inlet and by titration, so their neighbours disagree anyway")
    covariates: tuple[str, ...] = Field(
        default=(CO,), description="witness codes: summarised and sent with the judged"
        " codes, never judged; CO (a separate analyser with its own inlet, a regional"
        " combustion tracer) says whether a station's low PM is cleaner air (low CO too) or"
        " a blocked PM inlet (CO still with the neighbours); ``env_episodes`` uses the first")
    covariate_offset: float = Field(default=0.1, description="``offset`` of the witness in"
                                    " its unit (CO in mg/m³: its analysers' 0.1 resolution)")
    min_witness_h: int = Field(default=168, description="paired PM and CO residuals a"
                               " station needs before CO is its witness (a week)")
    offset: float = 5.0
    min_log_spread: float = Field(default=math.log(1.15) / 0.6745,
                                  description="spread floor: +-15 % agreement at one MAD")
    z: float = Field(default=5.0, description="the band of the plot and the confidence"
                     " scale: |z| = 2 z is full confidence")
    z_extend: float = Field(default=3.0, description="|z| (with the difference mattering)"
                            " that keeps an hour out of the station's own history")
    cusum_k: float = Field(default=1.5, description="CUSUM reference value: half the"
                           " smallest shift worth finding fast (a sampler passing half the"
                           " air, ln 0.5 = -0.69, is 3.3 spread floors)")
    cusum_h: float = Field(default=25.0, description="CUSUM decision interval, set from the"
                           " false alarms of the real record (BENCHMARKS.md)")
    cusum_h_witness: float = Field(
        default=17.0, description="``cusum_h`` of interference episodes judged given CO"
        " (``covariates``) in at least half their hours; PM alone keeps ``cusum_h``. From"
        " the real record: the smallest interval within 1.6 neighbour clues per"
        " station-year that leaves the suburbs' cleanest honest span under a city haze"
        " unflagged; with the checks of ``env_alike`` and ``lag_needs_witness``, 10"
        " interference clues in two Beijing years, 1.08 per station-year (before them: 20"
        " at 19, BENCHMARKS.md)")
    ratio_z: float | None = Field(
        default=3.0, description="robust sds of the station's usual PM2.5/PM10 log ratio"
        " residual beyond which an hour is no evidence of interference: a blocked inlet"
        " scales both channels alike (``env_alike``); None: not checked")
    witness_z: float | None = Field(
        default=3.0, description="robust sds under the station's usual CO residual beyond"
        " which an hour is no evidence of interference: the station breathed other air"
        " than its neighbours (``env_alike``); None: not checked")
    cusum_clip: float = Field(default=8.0, description="most evidence one hour gives"
                              " (Huber clip: the residuals have heavy tails)")
    lag_h: int = Field(default=3, description="hours the neighbours' medians may lead the"
                       " station: a plume or front crossing 10-50 km at 3-5 m/s")
    lag_needs_witness: bool = Field(
        default=True, description="given CO, an earlier hour of the neighbours explains"
        " the station's low PM only where the station's CO is as close to theirs then as"
        " now: the station breathes the air they had then (``env_episodes``)")
    channel_correlation: float = Field(
        default=0.53, description="correlation of the PM2.5 and PM10 z of honest hours"
        " (2 years of the 12 Beijing stations): their mean has sd sqrt((1+r)/2)")
    high: dict[str, float] = Field(default_factory=lambda: {PM25: 75.0, PM10: 150.0})
    high_per_episode: bool = Field(
        default=True, description="interference: the neighbours over ``high`` on average"
        " over the episode only (not in each hour of evidence)")
    difference_per_episode: bool = Field(
        default=True, description="``min_difference`` on the episode's mean only (not in"
        " each hour of evidence)")
    min_difference: dict[str, float] = Field(default_factory=lambda: {PM25: 35.0, PM10: 50.0})
    min_hours: dict[str, int] = Field(
        default_factory=lambda: {"interference": 6, "local_source": 6},
        description="hours an episode needs before it is raised: a quarter of a day, longer"
        " than a plume front takes to cross the 50 km between city and suburbs (2-3 h at"
        " 5 m/s), which is what shorter disagreements on real data mostly are")
    history_h: int = Field(default=720, description="hours of the station's own residuals")
    min_history_h: int = Field(default=48, description="residuals needed before judging")
    max_gap_h: int = 2
    update_every_h: int = 24

    @property
    def all_codes(self) -> tuple[str, ...]:
        """The codes summarised per station-hour: the judged ones and the witnesses."""
        return self.codes + tuple(c for c in self.covariates if c not in self.codes)


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
              neighbour_values: Mapping[str, float], offset: float | None = None
              ) -> Hour | None:
    """One station-hour against its neighbours, or None with too few reporting
    (``offset``: another code's, a witness's, instead of the PM one)."""
    if len(neighbour_values) < cfg.min_neighbours:
        return None
    off = cfg.offset if offset is None else offset
    return consensus_of_logs(cfg, value, log_value(value, off),
                             [log_value(v, off) for v in neighbour_values.values()], off,
                             tuple(sorted(neighbour_values)))


def log_value(value: float, offset: float) -> float:
    """The log scale every neighbour score is on (a value under 0 counts as 0)."""
    return math.log(max(value, 0.0) + offset)


def consensus_of_logs(cfg: NeighbourConfig, value: float, own: float, logs: list[float],
                      offset: float, neighbours: tuple[str, ...]) -> Hour:
    """``consensus`` from values already on the log scale (``log_value``): the region
    judge takes each station's log once per hour, not once per station that counts it as
    a neighbour (up to ``max_neighbours`` times)."""
    # a handful of values (``max_neighbours``): plain Python, not numpy, whose per-call
    # overhead made this median most of the region stage's time in the stream
    centre = _median(logs)
    spread = max(1.4826 * _median([abs(v - centre) for v in logs]), cfg.min_log_spread)
    return Hour(value, math.exp(centre) - offset, own - centre, spread, neighbours)


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
    kind: str | None  # |z| >= z_extend and the difference matters: kept out of the history
    expected: float = math.nan  # the station's expected value (its bias on the median)
    #: per kind, the evidence of this hour (positive: for the kind; lag-robust, see
    #: ``env_episodes``) and whether the hour's physics allows the kind at all
    x: dict[str, float] = field(default_factory=dict)
    gate: dict[str, bool] = field(default_factory=dict)
    #: whether the interference evidence was judged given the CO witness (else PM alone)
    witness: bool = False
