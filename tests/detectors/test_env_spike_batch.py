"""The batch-scored spike rule (``observe_many``) gives exactly what ``observe`` reading by
reading gives: same clue events, same state, on series with spikes, flags, duplicates, late
and out-of-period readings and restarts, cut into batches at arbitrary points."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from contract.records import Reading
from detectors.env import StationMonitor
from detectors.env_config import EnvConfig, StationInfo
from detectors.env_rules import robust_z
from detectors.env_spike import batch_scores

CFG = EnvConfig(evidence=False)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def noisy_series(seed: int, n: int = 400) -> list[Reading]:
    rng = random.Random(seed)
    out: list[Reading] = []
    for i in range(n):
        t = T0 + timedelta(hours=i)
        vals = {"a34004": round(40 * (0.7 + 0.6 * rng.random()), 1),
                "a21026": round(6 * (0.7 + 0.6 * rng.random()), 2)}
        if rng.random() < 0.05:
            vals["a34004"] = 900.0 + rng.random()  # spike (and an exceedance)
        if rng.random() < 0.02:
            vals["a21026"] = -1.0  # impossible, still buffered
        if i % 50 < 8:
            vals["a21026"] = 5.0  # flat run
        flags = {"a34004": "M"} if rng.random() < 0.1 else {}
        out.append(Reading(station="S1", time=t, period="hour", values=vals, flags=flags,
                           interval_s=3600))
        if rng.random() < 0.03:
            out.append(out[rng.randrange(len(out))])  # duplicate or late: skipped
        if rng.random() < 0.02:
            out.append(Reading(station="S1", time=t, period="minute", values=vals))
        if rng.random() < 0.01:
            out.append(Reading(station="S1", time=t, values={}, event="restart"))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_observe_many_equals_observe_one_by_one(seed: int) -> None:
    readings = noisy_series(seed)
    one = StationMonitor(StationInfo(id="S1"), CFG)
    expected = [c for r in readings for c in one.observe(r)]
    many = StationMonitor(StationInfo(id="S1"), CFG)
    rng, got, i = random.Random(seed), [], 0
    while i < len(readings):
        n = rng.choice([1, 3, 5, 17, 60, 200])
        got += many.observe_many(readings[i:i + n])
        i += n
    assert [c.model_dump() for c in got] == [c.model_dump() for c in expected]
    assert any(c.kind == "spike" for c in expected)
    assert many.to_state() == one.to_state()


def test_batch_scores_are_the_rule_s_own_z_scores() -> None:
    readings = noisy_series(5, 200)
    mon = StationMonitor(StationInfo(id="S1"), CFG)
    mon.observe_many(readings[:100])
    scores = batch_scores(mon.s, readings[100:], CFG.spike_window, CFG.buffer)
    assert scores is not None and len(scores) >= 190  # two codes, ~100 new readings each
    for r in readings[100:]:
        mon.observe(r)  # one by one: the buffers now hold what the batch put there
    buf = {c: mon.s["codes"][c]["buf"] for c in ("a34004", "a21026")}
    checked = 0
    for (code, t), (n, z) in scores.items():
        i = next(k for k, p in enumerate(buf[code]) if p[0] == t)
        window = [p[1] for p in buf[code][max(0, i - CFG.spike_window):i] if p[2] == "N"]
        assert n == len(window)
        if n >= CFG.spike_window // 2:
            assert z == robust_z(buf[code][i][1], window)
            checked += 1
    assert checked > 150


def flaky(bad: Reading) -> StationMonitor:
    """A monitor whose per-reading rules raise on one reading (a detector bug)."""
    mon = StationMonitor(StationInfo(id="S1"), CFG)
    original = mon._per_reading

    def per_reading(code, cs, t, value, flag, valid):  # type: ignore[no-untyped-def]
        if t == bad.time.timestamp():
            raise RuntimeError("detector bug")
        return original(code, cs, t, value, flag, valid)

    mon._per_reading = per_reading  # type: ignore[method-assign]
    return mon


def test_an_error_mid_batch_is_reported_and_the_rest_observed() -> None:
    readings = noisy_series(4, 120)
    bad = readings[60]
    failed: list[Reading] = []
    mon = flaky(bad)
    mon.observe_many(readings, lambda r, exc: failed.append(r))
    assert failed == [bad]
    assert mon.s["last"]["hour"] == max(r.time.timestamp() for r in readings
                                         if r.period == "hour")
    with pytest.raises(RuntimeError, match="detector bug"):
        flaky(bad).observe_many(readings)
