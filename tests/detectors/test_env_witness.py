"""CO as the witness of the neighbour rules, on the real record of the 12 Beijing stations.

A blocked or sprayed PM inlet does not touch the CO analyser (its own instrument and inlet);
air that is honestly cleaner lowers both. Changping, a suburban station whose PM residual
against the city wanders by 0.3-0.4 in log units, is the case the witness is for: its PM
scaled to 40 % for 12 h while CO still follows the neighbours is found, the same hours with
CO scaled alike (what cleaner air looks like) are not, and its honest hours of lowest PM
under high neighbours, which came with low CO, raise nothing.

The winter 2013-14 of the 12 stations, PM2.5, PM10 and CO (``samples/sensors/beijing_12``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from statistics import mean, median

import pytest

from bench.bench_env_neighbours import hour_index, load
from contract.records import Reading
from detectors.env_neighbours import CO, PM10, PM25, NeighbourMap, consensus
from detectors.env_region import judge_series, read_sites

DATA = Path(__file__).resolve().parents[2] / "samples" / "sensors" / "beijing_12"
SID = "BJ-CHANGPING"
H = 3600.0


@pytest.fixture(scope="module")
def autumn() -> dict[str, list[Reading]]:
    per = load(until=datetime(2013, 12, 15), data=DATA)
    return {s: [r for r in rs if r.time >= datetime(2013, 10, 15, tzinfo=r.time.tzinfo)]
            for s, rs in per.items()}


@pytest.fixture(scope="module")
def nmap() -> NeighbourMap:
    return NeighbourMap(read_sites(DATA / "stations.csv"))


def high_spans(per: dict[str, list[Reading]], nmap: NeighbourMap, hours: int) -> list[float]:
    """Starts of ``hours``-hour spans, 5 days apart, after 3 weeks (the station's PM and CO
    relation is learnt first), where the neighbours' PM2.5 median is over 75 µg/m³ and the
    station reported PM and CO throughout."""
    idx = hour_index(per)
    ts = sorted(idx)
    out: list[float] = []
    t = ts[0] + 21 * 86400
    while t < ts[-1] - hours * H:
        span = [t + k * H for k in range(hours)]
        ok = all(SID in idx.get(s, {}) and {PM25, CO} <= set(idx[s][SID].values)
                 and median([idx[s][n].values[PM25] for n in nmap.of(SID)
                             if n in idx[s] and PM25 in idx[s][n].values] or [0]) >= 75
                 for s in span)
        t += 5 * 86400 if ok else H
        if ok:
            out.append(span[0])
    return out


def scaled(per: dict[str, list[Reading]], t0: float, hours: int,
           codes: tuple[str, ...]) -> dict[str, list[Reading]]:
    span = {t0 + k * H for k in range(hours)}
    rows = [r.model_copy(update={"values": {c: round(v * 0.4, 3) if c in codes else v
                                            for c, v in r.values.items()}})
            if r.time.timestamp() in span else r for r in per[SID]]
    return {**per, SID: rows}


def interference(per: dict[str, list[Reading]], nmap: NeighbourMap, t0: float,
                 hours: int) -> list:
    return [c for c in judge_series(per, nmap, subjects=[SID])
            if c.kind == "interference" and c.start.timestamp() < t0 + hours * H
            and t0 < (c.end or c.time).timestamp() + H]


def test_pm_scaled_while_co_follows_the_neighbours_is_found_cleaner_air_is_not(
        autumn: dict[str, list[Reading]], nmap: NeighbourMap) -> None:
    # spans where the honest record raises nothing (one, 2013-12-07, overlaps a 22 h
    # episode of Changping's record alone: that span cannot tell what an injection adds)
    spans = [t0 for t0 in high_spans(autumn, nmap, 12)
             if not interference(autumn, nmap, t0, 12)]
    assert len(spans) >= 3
    found = cleaner = 0
    for t0 in spans:
        blocked = interference(scaled(autumn, t0, 12, (PM25, PM10)), nmap, t0, 12)
        if blocked:
            found += 1
            assert all(c.metrics["co_witness_hours"] == c.metrics["hours"] for c in blocked)
            assert all(c.metrics["value"] < 0.6 * c.metrics["limit"] for c in blocked)
        cleaner += bool(interference(scaled(autumn, t0, 12, (PM25, PM10, CO)), nmap, t0, 12))
    assert found >= len(spans) // 2  # a 12 h blocked inlet at a suburban station
    assert cleaner < found  # the same drop with CO dropping alike is cleaner air


def test_honest_low_pm_with_low_co_at_a_suburban_station_is_not_flagged(
        autumn: dict[str, list[Reading]], nmap: NeighbourMap) -> None:
    """The 12 h of the station's lowest PM2.5 against high neighbours (honest data): its CO
    was low too, and no interference clue covers them."""
    cfg = nmap.cfg
    idx = hour_index(autumn)
    res: dict[float, tuple[float, float]] = {}
    for t, hr in idx.items():
        if SID not in hr or not {PM25, CO} <= set(hr[SID].values):
            continue
        pm, co = (consensus(cfg, hr[SID].values[c], {n: hr[n].values[c] for n in nmap.of(SID)
                                                     if n in hr and c in hr[n].values}, off)
                  for c, off in ((PM25, None), (CO, cfg.covariate_offset)))
        if pm is not None and co is not None and pm.median >= 75:
            res[t] = (pm.residual, co.residual)
    starts = [t for t in res if all(t + k * H in res for k in range(12))]
    worst = min(starts, key=lambda t: mean(res[t + k * H][0] for k in range(12)))
    pm_low = mean(res[worst + k * H][0] for k in range(12))
    co_low = mean(res[worst + k * H][1] for k in range(12))
    assert pm_low < -0.9 and co_low < -0.5  # PM under 40 % of the city's, CO well under too
    assert not interference(autumn, nmap, worst, 12)
