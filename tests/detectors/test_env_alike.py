"""PM2.5/PM10 consistency of interference: a blocked inlet scales both channels alike.

A blocked, covered or sprayed inlet takes the same share of the fine and the coarse
particles, so the station's PM2.5/PM10 ratio against its neighbours' stays at its usual
value; one channel far off while the other is with the neighbours is something else (one
analyser failing, a front of coarse clean air). On the real winter 2013-14 of the 12
Beijing stations (``samples/sensors/beijing_12``): Dongsi's PM10 read a tenth of its
neighbours' for two days in January 2014 while its PM2.5 was with theirs (an interference
clue without the ratio check, none with it); both channels of the same station scaled to
40 % under a city haze are found, PM10 alone scaled alike is not. Changping's cleanest
honest span under the haze of 2013-11-23 (PM2.5 20-50 against the city's 150-280, its CO
far under its usual residual too: a clean air mass that reached the city 16 hours later)
raises an interference clue at the witnessed decision interval without the CO check, none
with it.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pytest

from bench.bench_env_neighbours import load
from contract.records import Reading
from detectors.env_alike import UsualResidual
from detectors.env_episodes import EpisodeTracker, joint_evidence
from detectors.env_neighbours import PM10, PM25, Hour, NeighbourConfig, NeighbourMap, Verdict
from detectors.env_region import read_sites
from tests.detectors.neighbour_injection import H, haze_spans, interference, scaled

DATA = Path(__file__).resolve().parents[2] / "samples" / "sensors" / "beijing_12"
SID = "BJ-DONGSI"
#: Dongsi's PM10 analyser read 6-14 µg/m³ against its neighbours' 150 (PM2.5 with theirs)
PM10_LOW = (datetime.fromisoformat("2014-01-10T12:00+08:00").timestamp(),
            datetime.fromisoformat("2014-01-12T04:00+08:00").timestamp())


@pytest.fixture(scope="module")
def winter() -> dict[str, list[Reading]]:
    return load(until=datetime(2014, 1, 21), data=DATA)


@pytest.fixture(scope="module")
def sites() -> list:
    return read_sites(DATA / "stations.csv")


#: Changping under the city's haze, its PM and CO both far under the neighbours'
CLEAN_AIR = (datetime.fromisoformat("2013-11-23T12:00+08:00").timestamp(),
             datetime.fromisoformat("2013-11-24T04:00+08:00").timestamp())


def test_one_analyser_far_off_while_the_other_follows_is_not_interference(
        winter: dict[str, list[Reading]], sites: list) -> None:
    unchecked = interference(winter, NeighbourMap(sites, NeighbourConfig(ratio_z=None)), SID,
                             *PM10_LOW)
    assert {c.rule for c in unchecked} == {f"interference/{PM10}"}  # the rule before
    assert not interference(winter, NeighbourMap(sites), SID, *PM10_LOW)


def test_a_suburb_in_cleaner_air_than_the_city_is_not_interference(
        winter: dict[str, list[Reading]], sites: list) -> None:
    sid = "BJ-CHANGPING"
    unchecked = NeighbourMap(sites, NeighbourConfig(witness_z=None))
    assert interference(winter, unchecked, sid, *CLEAN_AIR)  # the rule without it
    assert not interference(winter, NeighbourMap(sites), sid, *CLEAN_AIR)


def test_both_channels_scaled_alike_are_found_one_alone_is_not(
        winter: dict[str, list[Reading]], sites: list) -> None:
    nmap = NeighbourMap(sites)
    spans = haze_spans(winter, nmap, SID, 24, (PM25, PM10), avoid=PM10_LOW)
    assert len(spans) >= 3
    found = 0
    for t0 in spans:
        t1 = t0 + 24 * H
        assert not interference(winter, nmap, SID, t0, t1)  # the honest record: nothing then
        blocked = interference(scaled(winter, SID, t0, 24, (PM25, PM10), 1), nmap, SID, t0,
                               t1)
        found += bool(blocked)
        assert all(c.metrics["value"] < 0.6 * c.metrics["limit"] for c in blocked)
        assert not interference(scaled(winter, SID, t0, 24, (PM10,), 1), nmap, SID, t0, t1)
    assert found >= len(spans) - 1  # a blocked inlet at a city station for a day


def test_usual_residual_is_learnt_and_gates_interference_only() -> None:
    cfg = NeighbourConfig()
    usual = UsualResidual(cfg)
    assert usual.z(2.0) is None  # no history yet: not judged, as before
    for k in range(cfg.min_history_h):
        usual.remember(-0.3 + 0.05 * ((k % 5) - 2))  # the station's usual residual
    z = usual.z(-0.3 + cfg.min_log_spread)  # its own spread is under the floor
    assert z is not None and abs(z - 1.0) < 1e-3
    assert abs(usual.z(-0.3) or 0.0) < 1e-3
    v = Verdict(20.0, 150.0, 60.0, 300.0, -5.0, ("a", "b", "c"), None, 150.0,
                {"interference": 5.0, "local_source": -5.0},
                {"interference": True, "local_source": False})
    assert joint_evidence(cfg, [v, v], alike=False)["interference"] == 0.0  # can only lower S
    assert joint_evidence(cfg, [v, v], alike=True)["interference"] > 5.0
    w = Verdict(300.0, 20.0, 5.0, 60.0, 5.0, ("a", "b", "c"), None, 20.0,
                {"interference": -5.0, "local_source": 5.0},
                {"interference": False, "local_source": True})
    assert joint_evidence(cfg, [w, w], alike=False)["local_source"] > 5.0  # not judged by it


def _tracker(cfg: NeighbourConfig, hour: float) -> EpisodeTracker:
    """A station with a learnt history (no bias, CO slope 0.5) whose neighbours had PM2.5
    60 and CO 0.8 three hours ago and now PM2.5 200 and CO 2.0 (a haze arriving)."""
    state = {"hist": [0.0] * cfg.min_history_h, "fit": [0.0, 0.1, 0], "wfit": [0.0, 0.5, 0.1],
             "ctx": [[hour - 3 * H, 60.0, 40.0, 90.0, 60.0, round(math.log(0.8 + 0.1), 4)]],
             "run": None, "last": None}
    return EpisodeTracker(cfg, state)


def _hours(pm: float, co: float) -> tuple[Hour, Hour]:
    return (Hour(pm, 200.0, math.log(pm + 5) - math.log(205.0), 0.207, ("a", "b", "c")),
            Hour(co, 2.0, math.log(co + 0.1) - math.log(2.1), 0.207, ("a", "b", "c")))


def test_given_co_the_lag_explains_low_pm_only_where_co_breathes_the_earlier_air() -> None:
    hour = 1_000_000 * H
    cfg, old = NeighbourConfig(), NeighbourConfig(lag_needs_witness=False)
    pm, co = _hours(60.0, 2.0)  # PM at the neighbours' level of 3 h ago, CO with them now
    blocked = _tracker(cfg, hour).judge(PM25, pm, hour, co)
    before = _tracker(old, hour).judge(PM25, pm, hour, co)
    assert blocked is not None and before is not None
    assert blocked.x["interference"] > 5.0  # CO says this hour's air: the lag explains nothing
    assert before.x["interference"] < blocked.x["interference"] - 3.0
    pm, co = _hours(60.0, 0.8)  # CO at the neighbours' level of 3 h ago too: a late front
    front = _tracker(cfg, hour).judge(PM25, pm, hour, co)
    assert front is not None and front.x["interference"] < 1.5  # at most k: no evidence
