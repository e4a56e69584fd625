"""Episodes of the neighbour rules: evidence over hours (CUSUM) and over both PM channels.

Real PM2.5/PM10 of winter 2013-14 (``samples/sensors/beijing_12``). A sampler passing 40 %
of the air for two days moves each hour by ln 0.4 = -0.9, about 4 robust spreads at a city
station: no hour alone is convincing (honest hours reach that every week), the two days are;
the episode is found, at that station only. (At a suburban station whose own 30-day spread
is 0.55 in log units the same sampler is 1.6 spreads an hour: within what it does honestly,
see BENCHMARKS.md.) The channels' joint evidence and an old tracker state are checked on
their own.
"""

from __future__ import annotations

import math
from datetime import timedelta

from bench.bench_env_neighbours import load
from detectors.env_episodes import EpisodeTracker, joint_evidence
from detectors.env_neighbours import PM10, PM25, Hour, NeighbourConfig, NeighbourMap, Verdict
from detectors.env_region import judge_series, read_sites
from tests.detectors.test_env_neighbours import (
    DATA,
    START,
    STOP,
    doctor,
    find_run,
    neighbour_median,
)


def _verdict(x_int: float, gate: bool = True) -> Verdict:
    return Verdict(50.0, 100.0, 40.0, 250.0, -x_int, ("a", "b", "c"), None, 100.0,
                   {"interference": x_int, "local_source": -x_int},
                   {"interference": gate, "local_source": False})


def test_both_channels_shifted_together_weigh_more_than_one_alone() -> None:
    cfg = NeighbourConfig()
    sd = ((1 + cfg.channel_correlation) / 2) ** 0.5
    both = joint_evidence(cfg, [_verdict(3.0), _verdict(3.0)])["interference"]
    one = joint_evidence(cfg, [_verdict(3.0), _verdict(0.0)])["interference"]
    assert abs(both - 3.0 / sd) < 1e-9 and both > 3.0  # a shared shift stands out more
    assert abs(one - 1.5 / sd) < 1e-9 and one < 3.0  # one channel alone counts less
    assert joint_evidence(cfg, [_verdict(3.0)])["interference"] == 3.0  # one channel reported
    assert joint_evidence(cfg, [_verdict(50.0)])["interference"] == cfg.cusum_clip
    # where the physics does not allow the kind (neighbours clean), an hour only lowers S
    assert joint_evidence(cfg, [_verdict(6.0, gate=False)])["interference"] == 0.0
    assert joint_evidence(cfg, [_verdict(-2.0, gate=False)])["interference"] == -2.0


def test_a_sampler_passing_40_percent_for_two_days_is_found() -> None:
    per = load(until=STOP.replace(tzinfo=None), data=DATA)
    per = {sid: [r for r in rs if r.time >= START] for sid, rs in per.items()}
    nmap = NeighbourMap(read_sites(DATA / "stations.csv"))
    sid = "BJ-GUANYUAN"  # a city station: its usual spread is near the +-15 % floor
    own = {r.time: r for r in per[sid]}
    start = find_run(neighbour_median(per, nmap, sid, PM25), own, 48, lambda m: m >= 75)
    stop = start + timedelta(hours=48)
    doctored = doctor(per, sid, start, 48, lambda c, v: round(v * 0.4, 1))

    def found(series: dict, station: str) -> list:
        return [c for c in judge_series(series, nmap) if c.kind == "interference"
                and c.subject == station and c.start < stop and start < (c.end or c.time)]

    assert not found(per, sid)  # the honest record has no such episode then
    clues = found(doctored, sid)
    assert {c.rule.partition("/")[2] for c in clues} & {PM25, PM10}
    assert all(c.metrics["value"] < 0.6 * c.metrics["limit"] for c in clues)
    # no neighbour is blamed for it: the neighbours' median is robust to one station
    for other in nmap.of(sid):
        assert not found(doctored, other)


def test_a_state_written_before_the_cusum_still_loads() -> None:
    """A tracker state of the first version (no ``cus``, a run without ``acc``) goes on."""
    cfg = NeighbourConfig()
    old = {"ctx": [], "last": 0.0, "hist": [0.0] * 100, "fit": [0.0, 0.1, 0],
           "run": {"kind": "interference", "start": 0.0, "last": 0.0, "n": 3, "sum_v": 60.0,
                   "sum_m": 600.0, "z": -6.0, "open": False, "emitted": 0, "pts": [],
                   "neighbours": ["a", "b", "c"], "strong": 3}}
    tracker = EpisodeTracker(cfg, old)
    events = []
    for k in range(1, 30):
        h = Hour(20.0, 200.0, -2.2, 0.2, ("a", "b", "c"))
        v = tracker.judge(PM25, h, k * 3600.0)
        assert v is not None
        events += tracker.observe(PM25, k * 3600.0, v, joint_evidence(cfg, [v]))
    assert [e for e, _ in events][:1] == ["open"]
    run = events[0][1]
    assert run["start"] == 0.0 and run["n"] > 6  # the old run went on, its hours kept


def test_co_explains_an_honest_drop_and_not_a_blocked_inlet() -> None:
    """A suburban-like station whose PM residual follows its CO residual (slope 0.8, the
    Beijing suburbs' own) with a wide PM-alone spread: given CO, a PM drop that CO shares is
    no evidence and one that CO does not share is strong; without CO, judged on PM alone."""
    cfg = NeighbourConfig()
    tracker = EpisodeTracker(cfg)
    rng = [((k * 37) % 101) / 100.0 - 0.5 for k in range(400)]  # deterministic, +-0.5

    def hour(r_pm: float, r_co: float) -> tuple[Hour, Hour]:
        pm_median, co_median = 150.0, 1.5
        value = (pm_median + cfg.offset) * math.exp(r_pm) - cfg.offset
        co = (co_median + cfg.covariate_offset) * math.exp(r_co) - cfg.covariate_offset
        return (Hour(value, pm_median, r_pm, cfg.min_log_spread, ("a", "b", "c")),
                Hour(co, co_median, r_co, cfg.min_log_spread, ("a", "b", "c")))

    for k, e in enumerate(rng):
        r_co = 0.6 * rng[(k * 7) % len(rng)]
        pm, co = hour(-0.3 + 0.8 * r_co + 0.15 * e, r_co)
        tracker.judge(PM25, pm, None, co)
    a, b, spread = tracker.s["wfit"]
    assert 0.6 < b < 1.0 and abs(a + 0.3) < 0.1 and spread < 0.2
    assert tracker.s["fit"][1] > spread  # CO explains much of the PM-alone spread
    honest = tracker.judge(PM25, hour(-1.1, -1.0)[0], None, hour(-1.1, -1.0)[1])
    blocked = tracker.judge(PM25, hour(-1.1, 0.0)[0], None, hour(-1.1, 0.0)[1])
    alone = tracker.judge(PM25, hour(-1.1, 0.0)[0])  # no CO this hour: PM alone
    assert honest and blocked and alone
    assert honest.witness and blocked.witness and not alone.witness
    # cleaner air (CO low too) is no evidence; PM low while CO follows the neighbours is
    assert honest.x["interference"] < 1.0 < 3.0 < blocked.x["interference"]
    assert alone.x["interference"] < blocked.x["interference"]
