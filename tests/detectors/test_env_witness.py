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
from statistics import mean

import pytest

from bench.bench_env_neighbours import hour_index, load
from contract.records import Reading
from detectors.env_neighbours import CO, PM10, PM25, NeighbourMap, consensus
from detectors.env_region import read_sites
from tests.detectors.neighbour_injection import H, haze_spans, interference, scaled

DATA = Path(__file__).resolve().parents[2] / "samples" / "sensors" / "beijing_12"
SID = "BJ-CHANGPING"


@pytest.fixture(scope="module")
def autumn() -> dict[str, list[Reading]]:
    per = load(until=datetime(2013, 12, 15), data=DATA)
    return {s: [r for r in rs if r.time >= datetime(2013, 10, 15, tzinfo=r.time.tzinfo)]
            for s, rs in per.items()}


@pytest.fixture(scope="module")
def nmap() -> NeighbourMap:
    return NeighbourMap(read_sites(DATA / "stations.csv"))


def test_pm_scaled_while_co_follows_the_neighbours_is_found_cleaner_air_is_not(
        autumn: dict[str, list[Reading]], nmap: NeighbourMap) -> None:
    # spans where the honest record raises nothing (one, 2013-12-07, overlaps a 22 h
    # episode of Changping's record alone: that span cannot tell what an injection adds)
    spans = [t0 for t0 in haze_spans(autumn, nmap, SID, 12, (PM25, CO))
             if not interference(autumn, nmap, SID, t0, t0 + 12 * H)]
    assert len(spans) >= 3
    found = cleaner = 0
    for t0 in spans:
        blocked = interference(scaled(autumn, SID, t0, 12, (PM25, PM10), 3), nmap, SID, t0,
                               t0 + 12 * H)
        if blocked:
            found += 1
            assert all(c.metrics["co_witness_hours"] == c.metrics["hours"] for c in blocked)
            assert all(c.metrics["value"] < 0.6 * c.metrics["limit"] for c in blocked)
        cleaner += bool(interference(scaled(autumn, SID, t0, 12, (PM25, PM10, CO), 3), nmap,
                                     SID, t0, t0 + 12 * H))
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
    assert not interference(autumn, nmap, SID, worst, worst + 12 * H)
