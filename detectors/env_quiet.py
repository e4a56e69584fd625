"""Batch fast path of the env detector: runs of readings that raise no clue, judged with numpy.

Reading by reading, ``StationMonitor.observe`` spends most of its time proving that nothing
happened: closing each code's hour window, looking up its limit, building the window dict,
checking exceedance, hugging and flag masking, extending the flatline run. On ordinary data
almost every reading is like that. Given the monitor's state before a batch, those rules are
decided for all of a run of plain readings at once:

* a reading is *plain* when it is a primary-period hour reading after the last one, on
  time (no offline gap) with a declared or registered interval, with no ``-`` codes, no
  NOx/NO/NO2 triple, no flue-gas O2 check and no O2-corrected code;
* per code, numpy finds the first entry that could change an episode: an impossible
  value, a value over the 1-hour limit (exceedance or flag masking), a hugging window, a
  flatline run long enough to be judged, a spike score over the threshold (or not
  scored), or any open episode of that code's rules; each day window that closes on the
  way is checked in Python (``env_quiet_days``: flag share, 24-hour exceedance, hugging,
  masking; with a conditional limit the run stops at midnight instead);
* replayed blocks are checked in order (a hash per payload, as ``_replay`` does).

Every reading before the first such entry changes only the state (buffers, runs, day sums,
hug ratios, cadence deltas, replay hashes), which is updated in bulk with the same Python
float operations in the same order, so the state stays bit-identical; the first reading
that might raise a clue goes through ``observe`` itself. Any doubt means "not quiet": the
fast path never decides a clue, it only skips readings that provably raise none.

The batch is read once (``env_columns``: data times, per code its values and flags, payload
hashes column by column) and every quiet run and the spike scores take slices of that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from contract.clue import Clue
from contract.records import Reading
from detectors import env_rules as R
from detectors import env_windows as W
from detectors.env_columns import Columns
from detectors.env_config import NO, NO2, NOX, O2, PH, SIGNED_CODES
from detectors.env_quiet_days import conditional, day_walk, hour_limit
from detectors.env_spike import batch_scores
from detectors.limits import Limit

if TYPE_CHECKING:
    from detectors.env import StationMonitor
    from detectors.env_spike import SpikeScores

_SHARED_RULES = ("offline", "replay", "consistency/", "dilution/")
_MIN_SPAN, _MAX_SPAN = 24, 768  # readings one look ahead covers (see observe_batch)


def _plain_run(mon: StationMonitor, readings: Sequence[Reading], times: list[float], i: int,
               stop: int, one_day: bool) -> int:
    """End of the run of plain readings in ``i..stop`` (see the module doc); within one local
    day if ``one_day`` (a conditional limit reads other codes' day means, which change in
    reading order as the day windows close: left to ``observe``)."""
    s, cfg = mon.s, mon.cfg
    last = s["last"].get("hour")
    registered = mon.station.interval_s
    day = W.day_index(times[i], mon.off) if i < len(readings) else 0
    plain_codes: dict[tuple[str, ...], bool] = {}  # code sets seen: whether they are plain
    e = i
    while e < stop:
        r = readings[e]
        if r.event == "restart" or r.period != "hour" or last is None:
            break
        t = times[e]
        interval = registered or r.interval_s
        if t <= last or not interval or t - last > cfg.offline_factor * interval:
            break
        if one_day and W.day_index(t, mon.off) != day:
            break
        keys = tuple(r.values)
        plain = plain_codes.get(keys)
        if plain is None:
            plain = plain_codes[keys] = _plain_codes(mon, r.values)
        if not plain:
            break
        last = t
        e += 1
    return e


def _plain_codes(mon: StationMonitor, vals: dict[str, float]) -> bool:
    """Whether a reading with these codes can be plain (see the module doc)."""
    if any("-" in c for c in vals) or (NOX in vals and NO in vals and NO2 in vals):
        return False
    return not ((O2 in vals and mon.station.st == "31") or any(c in mon.o2_refs for c in vals))


def _impossible(code: str, v: np.ndarray) -> np.ndarray:
    """``env_rules.impossible`` for many values of one (plain, dash-free) code."""
    if code == PH:
        return (v < 0.0) | (v > 14.0)
    if code == O2:
        return (v < 0.0) | (v > 21.0)
    if code not in SIGNED_CODES and code[:1] in ("a", "w"):
        return v < 0.0
    return np.zeros(len(v), dtype=bool)


def _close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``_flatline``'s "same value" test, elementwise."""
    return np.abs(a - b) <= 1e-9 * np.maximum(1.0, np.abs(a))


def _flatline(run: list[Any] | None, v: np.ndarray, t: np.ndarray, valid: np.ndarray,
              min_run: int, min_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per entry: whether ``_flatline`` would judge the run (not quiet), and each valid
    entry's run start (index into the valid entries, -1 = the run carried in) and length."""
    x, tv = v[valid], t[valid]
    m = len(x)
    pos = np.arange(m)
    cont = np.zeros(m, dtype=bool)
    if m:
        cont[1:] = _close(x[1:], x[:-1])
        cont[0] = run is not None and bool(_close(x[:1], np.array([run[0]]))[0])
    start = np.maximum.accumulate(np.where(cont, -1, pos)) if m else pos
    first = np.maximum(start, 0)
    ref = np.where(start >= 0, x[first] if m else x, run[0] if run is not None else 0.0)
    t_start = np.where(start >= 0, tv[first] if m else tv, run[1] if run is not None else 0.0)
    count = np.where(start >= 0, pos - start + 1, (run[3] if run is not None else 0) + pos + 1)
    # the rule compares with the run's first value, not the previous one: where the two
    # disagree (a drifting chain of "equal" neighbours), let observe() decide
    ref_before = np.concatenate([[run[0] if run is not None else np.nan], ref[:-1]])
    with np.errstate(invalid="ignore"):
        drift = _close(x, ref_before[:m]) != cont
    judged = drift | ((count >= min_run) & (tv - t_start >= min_s))
    stop = np.zeros(len(v), dtype=bool)
    stop[np.flatnonzero(valid)[judged]] = True
    return stop, start, count


def _hug(ratios: list[float], new: np.ndarray, valid: np.ndarray, size: int, band: float,
         share: float) -> np.ndarray:
    """Per entry: whether ``_hug`` would find the last ``size`` ratios hugging the limit."""
    full = np.concatenate([np.asarray(ratios, dtype=np.float64), new[valid]])
    length = len(ratios) + np.cumsum(valid)
    out = np.zeros(len(valid), dtype=bool)
    if len(full) < size:
        return out
    views = np.lib.stride_tricks.sliding_window_view(full, size)
    near = ((views >= band) & (views <= 1.0)).sum(axis=1)
    hugging = (views.max(axis=1) <= 1.0) & (near >= share * size)
    full_len = length >= size
    out[full_len] = hugging[length[full_len] - size]
    return out


class _Code:
    """One code's entries in a run, the first one that is not quiet, and what to apply."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.pos: list[int] = []  # reading offsets in the run
        self.t: list[float] = []
        self.v: list[float] = []
        self.flag: list[str] = []
        self.declared: list[int | None] = []
        self.stop = 0  # offset of the first reading this code cannot pass
        self.lim: Limit | None = None
        self.cross = True  # may the run cross a local midnight (no conditional limits)
        self.walked: tuple[dict[str, Any], dict[str, list[float]], dict[str, float]] | None \
            = None
        self.run_start: np.ndarray | None = None
        self.run_count: np.ndarray | None = None


def _codes(readings: Sequence[Reading], cols: Columns, i: int, end: int,
           cross: bool) -> dict[str, _Code]:
    """Each code's entries in readings ``i..end``, codes in order of first appearance there
    (the order reading by reading would give them)."""
    found: list[tuple[tuple[int, int], _Code]] = []
    for code, col in cols.codes.items():
        a, b = col.span(i, end)
        if a == b:
            continue
        c = _Code(code)
        c.cross = cross
        c.pos, c.t, c.v = col.pos[a:b], col.t[a:b], col.v[a:b]
        c.flag, c.declared = col.flag[a:b], col.declared[a:b]
        found.append(((c.pos[0], list(readings[c.pos[0]].values).index(code)), c))
    found.sort(key=lambda e: e[0])
    return {c.code: c for _, c in found}


def _judge_code(mon: StationMonitor, c: _Code, end: int,
                pre: SpikeScores) -> None:
    """Set ``c.stop``: the first reading offset where a rule of this code may fire."""
    s, cfg, eps = mon.s, mon.cfg, mon.s["episodes"]
    code = c.code
    c.stop = end
    cs = s["codes"].get(code)
    if cs is None or cs["day"] is None or cs["hour"] is not None or not c.pos:
        c.stop = c.pos[0] if c.pos else end
        return
    if any(f"{rule}/{code}" in eps for rule in ("impossible", "flatline", "spike")):
        c.stop = c.pos[0]
        return
    v, t = np.array(c.v, dtype=np.float64), np.array(c.t, dtype=np.float64)
    valid = np.array([f == "N" for f in c.flag], dtype=bool)
    stop = _impossible(code, v)
    flat, c.run_start, c.run_count = _flatline(cs["run"], v, t, valid, cfg.flatline_min_run,
                                               cfg.flatline_min_s)
    stop |= flat
    found, counts, z = pre.lookup(code, t)
    stop |= valid & (~found | ((counts >= cfg.spike_window // 2) & (np.abs(z) > cfg.spike_z)))
    if (code, "1h") in mon.averagings:
        lim = c.lim = hour_limit(mon, code, c.t[0])
        if lim is not None:
            rules = (lim.rule, f"hug/{lim.rule}", f"flag-mask/{lim.rule}")
            if any(rule in eps for rule in rules):
                c.stop = c.pos[0]
                return
            stop |= v > lim.value  # exceedance if valid, flag masking if not
            stop |= _hug(cs["ratios"].get(lim.rule, []), v / lim.value, valid,
                         cfg.hug_window_1h, cfg.hug_band, cfg.hug_share)
    hit = np.flatnonzero(stop)
    first = min(int(hit[0]) if len(hit) else len(c.pos), day_walk(mon, c, len(c.pos), False))
    if first < len(c.pos):
        c.stop = c.pos[first]


def _replay_until(mon: StationMonitor, readings: Sequence[Reading], cols: Columns, i: int,
                  end: int) -> int:
    """Apply ``_replay``'s state changes for readings ``i..end`` in order; stop (unapplied)
    at the first one whose block was seen before."""
    rp, cfg = mon.s["replay"], mon.cfg
    block, window = cfg.replay_block, cfg.replay_window
    hashes = cols.payload_hashes(i, end)
    for k in range(i, end):
        vals = readings[k].values
        if len(vals) < 2:
            continue
        digest = hashes[k - i] if hashes is not None else R.payload_hash(vals)
        recent = (rp["recent"] + [digest])[-block:]
        n = rp["n"] + 1
        if len(recent) == block and len(set(recent)) > 1:
            key = "".join(recent)
            prev = rp["tri"].get(key)
            if prev is not None and block <= n - prev[0] <= window:
                return k
            rp["n"], rp["recent"] = n, recent
            rp["tri"][key] = [n, cols.times[k]]
            if len(rp["tri"]) > 2 * window:
                rp["tri"] = {k2: v for k2, v in rp["tri"].items() if n - v[0] <= window}
        else:
            rp["n"], rp["recent"] = n, recent
    return end


def _apply(mon: StationMonitor, c: _Code, upto: int) -> None:
    """The state changes of ``c``'s entries in readings before offset ``upto``."""
    m = int(np.searchsorted(np.array(c.pos), upto))
    if not m:
        return
    cs, cfg = mon.s["codes"][c.code], mon.cfg
    cs["src"] = W.RANK["hour"]
    buf = cs["buf"]
    first = max(0, m - cfg.buffer)  # older entries would be dropped again at once
    buf.extend([[t, v, f] for t, v, f in zip(c.t[first:m], c.v[first:m], c.flag[first:m],
                                             strict=True)])
    del buf[:-cfg.buffer]
    if m == len(c.pos) and c.walked is not None:
        cs["day"], cs["ratios"], means = c.walked
        mon.s["day_means"].update(means)
    elif day_walk(mon, c, m, True) != m:
        raise RuntimeError("env fast path: the day windows no longer match the look ahead")
    valid_idx = [j for j in range(m) if c.flag[j] == "N"]
    if valid_idx:  # the flatline run as it stands after the last valid entry
        assert c.run_start is not None and c.run_count is not None
        q = len(valid_idx) - 1
        start, count = int(c.run_start[q]), int(c.run_count[q])
        last_t = c.t[valid_idx[q]]
        if start < 0:
            cs["run"] = [cs["run"][0], cs["run"][1], last_t, count]
        else:
            first = valid_idx[start]
            cs["run"] = [c.v[first], c.t[first], last_t, count]
    if c.lim is not None:
        ratios = cs["ratios"].setdefault(c.lim.rule, [])
        ratios.extend(c.v[j] / c.lim.value for j in valid_idx)
        del ratios[:-cfg.hug_window_1h]


def observe_batch(mon: StationMonitor, readings: Sequence[Reading],
                  on_error: Callable[[Reading, Exception], None] | None) -> list[Clue]:
    """``StationMonitor.observe_many``: quiet runs in bulk, the other readings one by one.

    The look ahead is bounded (it is rebuilt after every reading ``observe`` had to see):
    it covers up to ``_MAX_SPAN`` readings, a day after a stop, doubling while whole spans
    pass; after a span that found
    nothing quiet the next try waits a few readings (doubling too), so a stretch of open
    episodes costs about what reading by reading costs."""
    out: list[Clue] = []
    cols = Columns(readings)
    mon._spike_pre = batch_scores(mon.s, readings, mon.cfg.spike_window, mon.cfg.buffer,
                                  cols)
    i, span, wait, backoff = 0, _MAX_SPAN, 0, 1
    try:
        while i < len(readings):
            if mon._spike_pre is not None and wait <= 0:
                stop = min(len(readings), i + span)
                j = quiet_run(mon, readings, i, mon._spike_pre, stop, cols)
                span = min(2 * span, _MAX_SPAN) if j == stop else _MIN_SPAN
                wait, backoff = (backoff, min(2 * backoff, 32)) if j == i else (0, 1)
                i = j
                if j == stop:
                    continue
            reading, i, wait = readings[i], i + 1, wait - 1
            try:
                out += mon.observe(reading)
            except Exception as exc:
                mon._spike_pre = None  # the buffers may differ from the precomputation
                if on_error is None:
                    raise
                on_error(reading, exc)
    finally:
        mon._spike_pre = None
    return out


def quiet_run(mon: StationMonitor, readings: Sequence[Reading], i: int,
              pre: SpikeScores | None, stop: int, cols: Columns | None = None) -> int:
    """Take the quiet readings of ``i..stop`` : their state changes are applied; returns the
    offset of the first reading ``observe`` must see (``i`` when it is the very next).
    ``cols``: the batch's columns (``env_columns``), made here if not given."""
    s = mon.s
    if pre is None or s["period"] != "hour" or any(
            rule.startswith(_SHARED_RULES) for rule in s["episodes"]):
        return i
    one_day = conditional(mon.limits, mon.standard)
    cols = cols if cols is not None else Columns(readings)
    end = _plain_run(mon, readings, cols.times, i, stop, one_day)
    if end == i:
        return i
    codes = _codes(readings, cols, i, end, not one_day)
    for c in codes.values():
        _judge_code(mon, c, end, pre)
        end = min(end, c.stop)
    end = _replay_until(mon, readings, cols, i, end)
    if end == i:
        return i
    for c in codes.values():
        _apply(mon, c, end)
    times = cols.times[i:end]
    prev = [s["last"]["hour"], *times[:-1]]
    s["deltas"] = (s["deltas"] + [b - a for a, b in zip(prev, times, strict=True)])[-16:]
    s["last"]["hour"] = times[-1]
    return end
