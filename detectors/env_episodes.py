"""Episodes of the neighbour rules: evidence that accumulates over hours and channels.

``env_neighbours`` scores one station-hour of one code: ``z``, its log residual against the
neighbours' median less the station's usual bias, in units of the larger of the neighbours'
spread and the station's own 30-day spread. What an inspector looks for is not one odd
hour but a *sustained* shift of unknown length: a sampler passing 40 % of the air for two
days moves the log residual by ln 0.4 = -0.9 for 48 hours; each hour is only z 2-4 (the
same as an honest suburban station's worst hours of a month), the run of them is not.

Three things turn hours into episodes, each for a reason of physics or statistics:

* **Both PM channels together.** A blocked or sprayed inlet scales PM2.5 and PM10 by the
  same factor; a source next to the station raises both. Per kind, the hour's evidence is
  the mean of the channels' scores divided by the sd of such a mean on honest hours,
  ``sqrt((1 + r) / 2)`` for two channels with correlation ``r`` (0.53 on two years of the 12
  Beijing stations: PM2.5 is most of PM10, but coarse dust and local traffic are not shared):
  a shift both channels share stands out by ``1 / 0.87``, a disagreement of one channel
  alone (a dust gust in PM10) is halved. A channel not reported that hour is left out.
* **The neighbours may lead by a few hours** (``lag_h``, 3). A front or a plume crosses
  the 10-50 km between stations in 1-4 hours at 3-5 m/s, so a suburban station is honestly
  cleaner (or dirtier) than the city until the air that was there arrives. The evidence of
  an hour is the weakest of its residuals against the neighbours' medians of this hour and
  the ``lag_h`` before (the station's value at ``t`` against their median at ``t - l``):
  if any of them explains the value, the hour is no evidence. Only past hours: the stream
  judges an hour without waiting.
* **A one-sided CUSUM per kind** (Page 1954), the textbook detector of a sustained shift of
  unknown length: ``S = max(0, S + x - k)``; an episode starts when ``S`` leaves 0, is
  raised once ``S >= h`` (and it has ``min_hours``), ends at ``S``'s peak (the change-point
  estimate) and closes when ``S`` is back at 0 or after a gap of more than ``max_gap_h``.
  Once raised, ``S`` is held at ``h``: a source of ten hours would otherwise pile up ``S``
  for two days of draining (``h / k`` = 17 hours at most now), and the next source in
  that time would be the same episode.
  ``k`` (1.5) is half the smallest shift worth finding fast: half the air (ln 0.5 = -0.69)
  is 3.3 spread floors (0.207). Each hour gives at most ``cusum_clip`` (8): real residuals
  have heavy tails (0.1 % of station-hours beyond -10), a Huber-clipped score keeps one wild
  hour from making an episode. ``h`` is the decision interval; it is set from the real
  record, not the injections: the residuals are autocorrelated (lag-1 0.43-0.75, larger at
  the suburban stations), so the textbook average run length of iid scores would promise far
  fewer false alarms than real data gives. ``h`` = 25 is the smallest interval that keeps
  the two real Beijing years within the goal of 2 neighbour clues per station-year with a
  20 % margin for other cities (1.54; h 24 gives 1.71, h 23 1.92, h 20 2.46; the sweep is
  in BENCHMARKS.md): about 5,700 station-hours between false clues. The lag is what allows
  it: without the lag, h 25 gives 3.13.

**CO is the witness of interference.** A blocked, covered or water-sprayed PM inlet does
not touch the CO analyser (a separate instrument with its own inlet), and CO is a regional
combustion tracer that rises and falls with PM across a city: a station that is honestly
cleaner than the city (suburbs, upwind, a front arriving later) is lower in CO too; one
whose PM drops while its CO still follows the neighbours is the tampering signature. Per
station and code, ``r_pm ~ a + b r_co`` (the PM and CO log residuals against the
neighbours' medians) is fitted (``witness_fit``, Huber) on the same unflagged 30-day
history as the bias, and the interference evidence of an hour is what CO leaves
unexplained, ``a - (r_pm - b r_co)``, in units of the larger of the neighbours' spread and
that part's own spread. On the two real Beijing years CO explains 23-41 % of the PM
residual's variance at the suburban stations (spread 0.24-0.39 -> 0.20-0.29) and 1-17 % at
the city ones, whose spread is near the floor anyway (BENCHMARKS.md). Where CO is missing
(the station or 3 neighbours) or the paired history is short (``min_witness_h``), the
hour is judged on PM alone and the clue says in how many hours. Given CO, the lag allowance
needs CO's word too (``lag_needs_witness``): the neighbours' medians of an earlier hour
explain the station's low PM only where its CO is as close to their CO then as to their CO
now (it breathes the air they had then); a blocked inlet leaves CO with this hour's
neighbours. On the real record this took interference recall from 0.854 to 0.875 at the
interval the rule sets (17 instead of 15), with fewer false clues (BENCHMARKS.md).
``local_source`` keeps PM alone: a local dust source raises PM without CO, a local fire
both, so CO tells nothing.

What the evidence is *about* is judged per hour, what makes it *matter* per episode. An
hour is evidence of interference only where the station is under its expected value and of
a local source only where it is over it (``gate``; an hour that fails it can only lower
``S``); of interference also only where it can be a blocked inlet: PM2.5 and PM10 moved
alike and CO stayed with the neighbours (``env_alike``, judged by ``RegionJudge``). Whether
the difference matters for an inspector is a property of the episode the clue reports: a
raised episode gives one clue per code whose own mean difference over the episode is at
least ``min_difference`` (the Grade I daily limits) and, for interference, whose
neighbours' mean over it is over ``high`` (the Grade II daily limit: a sampler hidden on
clean days hides nothing). Judging these per hour instead (``high_per_episode`` and
``difference_per_episode`` False) dropped the hours of an episode where the city dipped
under the limit for an hour or a suburban station's expected value was near it, and cut the
episode short; on the real record the two give nearly the same false alarms (1.50 and 1.54
per station-year). The clue is the contract's one per station and code, ``value`` the
station's mean and ``limit`` the neighbours' median over the episode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain

import numpy as np

from detectors.env_alike import UsualResidual
from detectors.env_neighbours import Hour, NeighbourConfig, Verdict
from detectors.order_stats import median_inplace

KINDS = ("interference", "local_source")
#: hours of context kept before an episode, for the evidence plot and the lagged medians
CONTEXT_H = 12
#: hours of an episode kept for the plot (the numbers in the clue cover all of it)
PLOT_H = 14 * 24


def joint_evidence(cfg: NeighbourConfig, verdicts: Sequence[Verdict],
                   alike: bool = True) -> dict[str, float]:
    """Per kind, the CUSUM increment (before ``- k``) of one station-hour from the verdicts
    of its channels: their mean score over the sd of such a mean on honest hours, clipped;
    at most 0 where no channel's physics allows the kind, and for interference where the
    hour cannot be a blocked inlet (``alike`` False: ``env_alike``)."""
    n = len(verdicts)
    sd = math.sqrt((1 + (n - 1) * cfg.channel_correlation) / n)
    out = {}
    for kind in KINDS:
        x = sum(v.x[kind] for v in verdicts) / n / sd
        x = max(-cfg.cusum_clip, min(x, cfg.cusum_clip))
        allowed = any(v.gate[kind] for v in verdicts) and (alike or kind != "interference")
        out[kind] = x if allowed else min(x, 0.0)
    return out


class EpisodeTracker:
    """Episodes of one station and code from its hour verdicts, in time order.

    State is a JSON dict (the stream keeps it in a table): ``hist`` the station's last
    unflagged residuals and ``fit`` (bias, spread, hours since), ``ctx`` the last hours
    judged (for the plot and the lagged medians), ``cus`` the CUSUM of each kind and
    ``cus_t`` its last hour, ``run`` the current episode (``kind``, ``start``, ``last``
    = the hour of ``peak``, ``n`` hours and sums of the station's, the neighbours' median and
    the expected values up to the peak, ``acc`` the same up to now, worst ``z``, ``open``
    once emitted, ``pts`` the plotted hours). Keys added since the first version have
    defaults, so an old state loads.
    """

    def __init__(self, cfg: NeighbourConfig, state: dict | None = None) -> None:
        self.cfg = cfg
        self.s: dict = state if state is not None else {"ctx": [], "run": None, "last": None,
                                                        "hist": []}

    def judge(self, code: str, h: Hour, hour: float | None = None,
              witness: Hour | None = None) -> Verdict | None:
        """The verdict of an hour against the neighbours and the station's own relation to
        them: a suburban station is cleaner than the city every day, and its residual
        wanders more; its median residual (bias) and their spread (MAD) over the last
        ``history_h`` unflagged hours say by how much. None while that history is short.
        ``hour`` (epoch s) finds the neighbours' medians of the ``lag_h`` hours before.
        ``witness``: the station's CO hour against its neighbours' (None: not reported);
        with it, the interference evidence is the PM residual CO does not explain
        (``_witness``)."""
        cfg = self.cfg
        usual = UsualResidual(cfg, self.s, digits=None)  # the bias: "hist" and "fit" here
        if not usual.ready():
            self._remember(h.residual, witness)
            return None
        bias, mad, refitted = usual.usual()
        if refitted:  # the CO witness's fit on the same day
            wit = self.s.get("wit") or []
            self.s["wfit"] = witness_fit(np.fromiter(
                chain.from_iterable(wit), float, 2 * len(wit)).reshape(-1, 2)) \
                if len(wit) >= cfg.min_witness_h else None  # fromiter: 1/3 of asarray's time
        scale = max(h.spread, mad)
        z = (h.residual - bias) / scale
        centre = math.log(h.median + cfg.offset) + bias
        expected = math.exp(centre) - cfg.offset
        own = math.log(max(h.value, 0.0) + cfg.offset)
        lagged = [p for p in self.s["ctx"] if hour is not None and 0 < hour - p[0] <= cfg.lag_h
                  * 3600]
        residuals = [h.residual] + [own - math.log(p[4] + cfg.offset) for p in lagged]
        x_int, z_int = (bias - max(residuals)) / scale, z
        given = self._witness(h, witness, lagged)
        if given is not None:
            x_int, z_int = given
        diff = 0.0 if cfg.difference_per_episode else cfg.min_difference.get(code, 0.0)
        gate = {"interference": (cfg.high_per_episode or h.median >= cfg.high.get(code, 0.0))
                and expected - h.value >= diff,
                "local_source": h.value - expected >= diff}
        kind = None  # the hour as the history sees it: far, and a difference that matters
        if min(z, z_int) <= -cfg.z_extend and h.median >= cfg.high.get(code, 0.0) \
                and expected - h.value >= cfg.min_difference.get(code, 0.0):
            kind = "interference"
        elif z >= cfg.z_extend and h.value - expected >= cfg.min_difference.get(code, 0.0):
            kind = "local_source"
        if kind is None:
            self._remember(h.residual, witness)
        band = cfg.z * scale
        return Verdict(h.value, h.median, math.exp(centre - band) - cfg.offset,
                       math.exp(centre + band) - cfg.offset, z, h.neighbours, kind, expected,
                       {"interference": x_int,
                        "local_source": (min(residuals) - bias) / scale}, gate,
                       given is not None)

    def _witness(self, h: Hour, witness: Hour | None,
                 lagged: list[list]) -> tuple[float, float] | None:
        """The interference evidence and z of an hour given CO, or None (no CO this hour
        at the station or its neighbours, or too short a paired history: PM alone).

        ``u = r_pm - b r_co`` is the PM residual the CO residual does not explain (the
        station's fit ``a + b r_co``, ``witness_fit``); its own spread replaces the PM
        residual's. The lag allowance is the same as PM alone, with CO lagged alike: the
        station's values of this hour against the neighbours' medians of an earlier one,
        where the station's CO is as close to theirs then as now (``lag_needs_witness``)."""
        fit = self.s.get("wfit")
        if witness is None or fit is None:
            return None
        a, b, mad_u = fit
        off = self.cfg.covariate_offset
        co_own = witness.residual + math.log(witness.median + off)
        pm_own = math.log(max(h.value, 0.0) + self.cfg.offset)
        us = [h.residual - b * witness.residual]
        co_now = abs(witness.residual)
        us += [pm_own - math.log(p[4] + self.cfg.offset) - b * (co_own - p[5])
               for p in lagged if len(p) > 5 and p[5] is not None
               and (not self.cfg.lag_needs_witness or abs(co_own - p[5]) <= co_now)]
        scale = max(h.spread, mad_u)
        return (a - max(us)) / scale, (us[0] - a) / scale

    def _remember(self, residual: float, witness: Hour | None = None) -> None:
        UsualResidual(self.cfg, self.s).remember(residual)
        if witness is not None:
            wit = self.s.setdefault("wit", [])
            wit.append([round(residual, 4), round(witness.residual, 4)])
            if len(wit) > self.cfg.history_h:
                del wit[:len(wit) - self.cfg.history_h]

    def observe(self, code: str, hour: float, v: Verdict, evidence: dict[str, float],
                witness: Hour | None = None) -> list[tuple[str, dict]]:
        """Feed the verdict of hour ``hour`` (epoch s) and the station-hour's evidence per
        kind (``joint_evidence``); returns (state, run) events. ``witness``: the hour's CO
        (its neighbours' log centre is kept with the context, for the lag allowance)."""
        cfg = self.cfg
        self.s["last"] = hour
        out: list[tuple[str, dict]] = []
        run = self.s.get("run")
        cus = self.s.get("cus") or dict.fromkeys(KINDS, 0.0)
        if self.s.get("cus_t") is not None and hour - self.s["cus_t"] > cfg.max_gap_h * 3600:
            cus = dict.fromkeys(KINDS, 0.0)  # a gap: what was accumulated is stale
            if run is not None:
                out += self._close(run)
                run = None
        for kind in KINDS:
            cus[kind] = round(max(0.0, cus[kind] + evidence.get(kind, 0.0) - cfg.cusum_k), 4)
        if run is not None and run["open"]:  # raised: no need to out-grow the decision level
            kind, h = run["kind"], self._interval(run)
            cus[kind] = min(cus[kind], h)
            run["peak"] = min(run["peak"], h)  # hours at the level still extend the episode
        self.s["cus"], self.s["cus_t"] = cus, hour
        if run is not None and cus[run["kind"]] <= 0.0:
            out += self._close(run)
            run = None
        if run is None and max(cus.values()) > 0.0:
            kind = max(KINDS, key=lambda k: cus[k])
            run = self.s["run"] = {"kind": kind, "start": hour, "last": hour, "n": 0,
                                   "sum_v": 0.0, "sum_m": 0.0, "sum_e": 0.0, "peak": 0.0,
                                   "acc": [0, 0.0, 0.0, 0.0], "z": 0.0, "open": False,
                                   "emitted": 0, "pts": list(self.s["ctx"]),
                                   "neighbours": list(v.neighbours)}
        point = [hour, v.value, v.low, v.high, v.median]
        if run is not None:
            out += self._extend(code, run, v, cus[run["kind"]], hour)
            if len(run["pts"]) < PLOT_H:
                run["pts"].append(point)
        centre = None if witness is None else \
            round(math.log(witness.median + self.cfg.covariate_offset), 4)
        self.s["ctx"] = (self.s["ctx"] + [point + [centre]])[-CONTEXT_H:]
        return out

    def _extend(self, code: str, run: dict, v: Verdict, s: float,
                hour: float) -> list[tuple[str, dict]]:
        """One more hour of the episode; ``s`` its kind's CUSUM now."""
        cfg = self.cfg
        _upgrade(run)
        acc = run["acc"]
        acc[0] += 1
        acc[1] += v.value
        acc[2] += v.median
        acc[3] += v.expected if math.isfinite(v.expected) else v.median
        run["wacc"] = run.get("wacc", 0) + int(v.witness)
        sign = -1.0 if run["kind"] == "interference" else 1.0
        run["z"] = v.z if sign * v.z > sign * run["z"] else run["z"]
        run["neighbours"] = sorted(set(run["neighbours"]) | set(v.neighbours))
        if s >= run["peak"]:
            run["peak"], run["last"] = s, hour
            run["n"], run["sum_v"], run["sum_m"], run["sum_e"] = acc
            run["wh"] = run["wacc"]  # hours judged given CO, up to the peak
        h = self._interval(run)
        if not run["open"] and s >= h and run["n"] >= cfg.min_hours[run["kind"]] \
                and self._matters(code, run):
            run["open"] = True
            run["emitted"] = run["n"]
            return [("open", dict(run))]
        if run["open"] and run["n"] - run["emitted"] >= cfg.update_every_h:
            run["emitted"] = run["n"]
            return [("update", dict(run))]
        return []

    def _interval(self, run: dict) -> float:
        """The decision interval of the episode: lower for interference judged given CO."""
        witnessed = run["kind"] == "interference" and 2 * run.get("wacc", 0) >= run["acc"][0]
        return self.cfg.cusum_h_witness if witnessed else self.cfg.cusum_h

    def _matters(self, code: str, run: dict) -> bool:
        """Whether this code's own mean difference over the episode is one that matters
        (and, for interference, its neighbours' mean is high)."""
        n = run["n"]
        diff = self.cfg.min_difference.get(code, 0.0)
        if run["kind"] == "local_source":
            return (run["sum_v"] - run["sum_e"]) / n >= diff
        return (run["sum_e"] - run["sum_v"]) / n >= diff \
            and run["sum_m"] / n >= self.cfg.high.get(code, 0.0)

    def _close(self, run: dict) -> list[tuple[str, dict]]:
        self.s["run"] = None
        return [("closed", run)] if run["open"] else []

    def flush(self) -> list[tuple[str, dict]]:
        """End of a finite series: an open episode stays open (nothing closed it)."""
        return []


def witness_fit(pairs: np.ndarray) -> list[float]:
    """``[a, b, spread]`` of a station's PM residual on its CO residual (rows ``[r_pm,
    r_co]``): a Huber regression (IRLS, k = 1.345 robust sds: 95 % efficient on normal
    residuals, bounded influence of the heavy tails) and the scaled MAD of what CO leaves
    unexplained. ``b`` is at least 0: CO and PM of one city rise and fall together, a
    negative slope would make clean air look blocked."""
    y, x = np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1])
    w = np.ones_like(y)
    b = 0.0
    for _ in range(8):
        # weighted least squares of a line, in closed form (the normal equations of two
        # unknowns; lstsq did the same at several times the cost, per station and day)
        sw, sx, sy = float(w.sum()), float(w @ x), float(w @ y)
        sxx, sxy = float(w @ (x * x)), float(w @ (x * y))
        det = sw * sxx - sx * sx
        b = (sw * sxy - sx * sy) / det if det > 1e-12 else 0.0
        a = (sy - b * sx) / sw
        b = max(b, 0.0)
        u = y - a - b * x
        s = 1.4826 * median_inplace(np.abs(u - median_inplace(u.copy()))) or 1e-6
        w = np.minimum(1.0, 1.345 * s / np.maximum(np.abs(u), 1e-12))
    a = median_inplace(y - b * x)
    u = y - b * x - a
    return [round(a, 4), round(b, 4), round(1.4826 * median_inplace(np.abs(u)), 4)]


def _upgrade(run: dict) -> None:
    """A run of a state written before the CUSUM (no peak, no expected values)."""
    if "acc" not in run:
        run["sum_e"] = run["sum_m"]
        run["acc"] = [run["n"], run["sum_v"], run["sum_m"], run["sum_e"]]
        run["peak"] = 0.0
