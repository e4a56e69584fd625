"""The environmental detector: one stateful monitor per station, clues per episode.

``StationMonitor`` keeps all its state in one plain dict of JSON types (``to_state`` /
``from_state``) so the stream layer can keep it in a table keyed by station and a restart
resumes mid-episode. Time comes only from the readings (or ``tick(now)``); the detector never
reads a clock, so replaying a file gives the same clues as the live stream did.

Rules, keyed (station, rule) where the rule names the code: exceedance of the station's
standard, values hugging just under a limit, flag masking and flag share, flatline, spike,
impossible values, NOx and O2-correction consistency, dilution, replayed blocks, offline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from statistics import median
from typing import Any

from contract.clue import Clue, EvidenceRef
from contract.records import Reading
from detectors import env_rules as R
from detectors.env_config import DETECTOR, O2, VERSION, EnvConfig, StationInfo
from detectors.env_judge import WindowRules
from detectors.env_quiet import observe_batch
from detectors.env_spike import SpikeScores
from detectors.env_state import copy_state, snapshot_state
from detectors.limits import LimitTable, o2_correct
from detectors.plots import OnPlot, SeriesPlot, plot_evidence
from detectors.plugin import register

_TABLE: LimitTable | None = None


def default_limits() -> LimitTable:
    global _TABLE
    if _TABLE is None:
        _TABLE = LimitTable.load()
    return _TABLE


class StationMonitor(WindowRules):
    """Stateful per-station detector; ``observe`` returns clue events (open/update/closed)."""

    def __init__(self, station: StationInfo, config: EnvConfig | None = None,
                 limits: LimitTable | None = None, state: dict[str, Any] | None = None) -> None:
        self.station = station
        self.cfg = config or EnvConfig()
        self.limits = limits or default_limits()
        self.standard = station.resolved_standard
        rows = self.limits.for_standard(self.standard)
        self.o2_refs = {r.code: r.o2_ref for r in rows if r.o2_ref is not None}
        self.averagings = {(r.code, r.averaging) for r in rows}
        self.off = station.utc_offset_hours * 3600.0
        self.tz = timezone(timedelta(hours=station.utc_offset_hours))
        self.s: dict[str, Any] = state if state is not None else {
            "v": 1, "station": station.model_dump(mode="json"), "period": None, "last": {},
            "deltas": [], "restart": None, "codes": {}, "episodes": {},
            "replay": {"n": 0, "tri": {}, "recent": []}, "day_means": {}}
        self._spike_pre: SpikeScores | None = None  # set by observe_many for its batch
        #: where evidence plots go: None renders them here and now; a callback gets the
        #: (still empty) EvidenceRef and what to draw, and fills the content later
        self.on_plot: OnPlot | None = None

    # ------------------------------------------------------------------ state
    @classmethod
    def from_state(cls, state: dict[str, Any], config: EnvConfig | None = None,
                   limits: LimitTable | None = None) -> StationMonitor:
        return cls(StationInfo.model_validate(state["station"]), config, limits,
                   copy_state(state))

    def to_state(self) -> dict[str, Any]:
        return snapshot_state(self.s)

    @property
    def live_state(self) -> dict[str, Any]:
        """The state itself, which the next ``observe`` changes: for a caller that encodes
        it before then (the stream writes the bytes to its changelog at once), saving the
        per-batch copy of ``to_state``."""
        return self.s

    # ------------------------------------------------------------------ inputs
    def note_restart(self, when: datetime) -> None:
        """Record a logger restart (HJ 212 CN 2081); an offline clue after it says so."""
        self.s["restart"] = when.timestamp()

    def tick(self, now: datetime) -> list[Clue]:
        """Open an offline clue when no data came for too long (``now`` from the caller)."""
        last = self.s["last"].get(self.s["period"] or "")
        interval = self._interval()
        t = now.timestamp()
        if last is None or interval is None or t - last <= self.cfg.offline_factor * interval:
            return []
        return self._hold("offline", "offline", None, last, t, self._offline_metrics(last, t),
                          "no data for longer than the station's own cadence allows")

    def observe(self, reading: Reading) -> list[Clue]:
        """Feed one reading. Cadence, replay, consistency, flatline and spike run on the first
        period the station sent (HJ 212 stations send rtd, minute and hour data together);
        windows use the finest-ranked source per code (hour > minute > rtd > day)."""
        if reading.event == "restart":
            self.note_restart(reading.time)
            return []
        t = reading.time.timestamp()
        period = reading.period
        last = self.s["last"].get(period)
        if last is not None and t <= last:
            return []  # duplicate or late: windows already moved on
        out: list[Clue] = []
        if self.s["period"] is None:
            self.s["period"] = period
        primary = period == self.s["period"]
        if primary:
            out += self._cadence(t, last, reading.interval_s)
        self.s["last"][period] = t
        values, flags = reading.values, reading.flags
        if primary:
            out += self._replay(t, values)
            out += self._consistency(t, values)
        o2 = values.get(O2)
        for code, value in values.items():
            if "-" in code:
                continue
            flag = flags.get(code, "N")
            valid = flag == "N"
            reason = R.impossible(code, value)
            if reason:
                out += self._hold(f"impossible/{code}", "impossible", code, t, t,
                                  {"value": value, "reason": reason}, f"{code}: {reason}")
                valid = False
            elif f"impossible/{code}" in self.s["episodes"]:
                out += self._clear(f"impossible/{code}", t)
            cs = self._code(code)
            if primary:
                out += self._per_reading(code, cs, t, value, flag, valid)
            if code in self.o2_refs:
                corrected = o2_correct(value, o2, self.o2_refs[code]) if o2 is not None else None
                value = corrected if corrected is not None else value
                cs["o2_corrected"] = corrected is not None
            out += self._window(code, cs, t, value, flag, valid, period, reading.interval_s)
        return out

    def observe_many(self, readings: Sequence[Reading],
                     on_error: Callable[[Reading, Exception], None] | None = None) -> list[Clue]:
        """``observe`` each reading in order -- the same clues -- with the spike rule's
        scores computed for the whole batch at once (``env_spike``) and runs of readings that
        raise no clue taken in bulk (``env_quiet``). A reading whose observation raises goes
        to ``on_error`` and the rest are still observed (one by one from then on); without
        ``on_error`` the error propagates."""
        return observe_batch(self, readings, on_error)

    def flush(self) -> list[Clue]:
        """Close pending windows at the end of a finite series; open episodes stay open."""
        out: list[Clue] = []
        for code, cs in self.s["codes"].items():
            if cs.get("hour"):
                out += self._close_hour(code, cs)
            if cs.get("day"):
                out += self._close_day(code, cs)
        return out

    # ------------------------------------------------------------------ helpers
    def _dt(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, UTC).astimezone(self.tz)

    def _code(self, code: str) -> dict[str, Any]:
        cs = self.s["codes"].get(code)
        if cs is None:
            cs = self.s["codes"][code] = {"buf": [], "run": None, "hour": None, "day": None,
                                          "src": -1, "ratios": {}}
        return cs

    def _interval(self, declared: int | None = None) -> float | None:
        if self.station.interval_s:
            return float(self.station.interval_s)
        if declared:
            return float(declared)
        d = self.s["deltas"]
        return median(d) if len(d) >= 3 else None

    def _offline_metrics(self, last: float, t: float) -> dict[str, Any]:
        interval = self._interval() or 0.0
        m: dict[str, Any] = {"last_data": self._dt(last).isoformat(), "gap_s": t - last,
                             "interval_s": interval,
                             "timeout_s": self.cfg.offline_factor * interval}
        restart = self.s["restart"]
        if restart is not None and last - 3 * interval <= restart <= t:
            m["logger_restart"] = self._dt(restart).isoformat()
        return m

    def _cadence(self, t: float, last: float | None, declared: int | None) -> list[Clue]:
        if last is None:
            return []
        out: list[Clue] = []
        interval = self._interval(declared)
        gap = t - last
        if interval is not None and gap > self.cfg.offline_factor * interval:
            m = self._offline_metrics(last, t)
            summary = f"offline for {gap / 3600:.1f} h (cadence {interval:.0f} s)"
            if "logger_restart" in m:
                summary += "; logger restarted before the gap"
            out += self._hold("offline", "offline", None, last, last, m, summary)
            out += self._clear("offline", t, metrics=m)
        else:
            self.s["deltas"] = (self.s["deltas"] + [gap])[-16:]
        return out

    # ------------------------------------------------------------------ episodes
    def _hold(self, rule: str, kind: str, code: str | None, start: float, t: float,
              metrics: dict[str, Any], summary: str, confidence: float = 1.0,
              limit: float | None = None) -> list[Clue]:
        """The condition holds at ``t``: open the episode or update it (throttled)."""
        ep = self.s["episodes"].get(rule)
        if ep is None:
            ep = self.s["episodes"][rule] = {
                "kind": kind, "code": code, "start": start, "last": t, "emitted": t,
                "metrics": dict(metrics), "summary": summary, "n": 1,
                "confidence": confidence, "limit": limit}
            return [self._clue(rule, ep, "open")]
        ep["last"] = max(ep["last"], t)
        ep["n"] += 1
        ep["metrics"].update(metrics)
        ep["summary"] = summary
        ep["confidence"] = max(ep["confidence"], confidence)
        if t - ep["emitted"] >= self.cfg.update_every_s:
            ep["emitted"] = t
            return [self._clue(rule, ep, "update")]
        return []

    def _clear(self, rule: str, t: float, metrics: dict[str, Any] | None = None) -> list[Clue]:
        ep = self.s["episodes"].pop(rule, None)
        if ep is None:
            return []
        ep["metrics"].update(metrics or {})
        return [self._clue(rule, ep, "closed", end=ep.get("end", t))]

    def _clue(self, rule: str, ep: dict[str, Any], state: str,
              end: float | None = None) -> Clue:
        evidence = []
        if self.cfg.evidence and state != "update":
            evidence.append(self._plot(rule, ep, end))
        metrics = dict(ep["metrics"], episode_observations=ep["n"])
        if ep["limit"] is not None:
            metrics.setdefault("limit", ep["limit"])
        return Clue(modality="env", kind=ep["kind"], rule=rule, subject=self.station.id,
                    state=state, start=self._dt(ep["start"]), time=self._dt(ep["last"]),
                    end=self._dt(end) if end is not None else None,
                    confidence=ep["confidence"], metrics=metrics, summary=ep["summary"],
                    detector=DETECTOR, detector_version=VERSION,
                    params={"standard": self.standard,
                            "utc_offset_hours": self.station.utc_offset_hours},
                    evidence=evidence)

    def _plot(self, rule: str, ep: dict[str, Any], end: float | None) -> EvidenceRef:
        code = ep["code"]
        buf = self.s["codes"].get(code, {}).get("buf", []) if code else []
        ok = [(self._dt(p[0]), p[1]) for p in buf if p[2] == "N"]
        bad = [(self._dt(p[0]), p[1]) for p in buf if p[2] != "N"]
        stop = end if end is not None else ep["last"]
        means = [(self._dt(w["t0"]), self._dt(w["t1"]), w["mean"])
                 for w in ep["metrics"].get("windows", []) if w.get("mean") is not None]
        plot = SeriesPlot(f"{self.station.id} {rule} ({ep['kind']})", [p[0] for p in ok],
                          [p[1] for p in ok], limit=ep["limit"], flagged=bad, means=means,
                          shade=(self._dt(ep["start"]), self._dt(max(stop, ep["start"] + 1))))
        return plot_evidence(f"{rule.replace('/', '_')}.png", plot, self.on_plot)

    # ------------------------------------------------------------------ per-reading rules
    def _per_reading(self, code: str, cs: dict[str, Any], t: float, value: float, flag: str,
                     valid: bool) -> list[Clue]:
        out: list[Clue] = []
        cs["buf"].append([t, value, flag])
        if len(cs["buf"]) > self.cfg.buffer:
            del cs["buf"][0]
        if not valid:
            return out
        out += self._flatline(code, cs, t, value)
        out += self._spike(code, cs, t, value)
        return out

    def _flatline(self, code: str, cs: dict[str, Any], t: float, value: float) -> list[Clue]:
        rule = f"flatline/{code}"
        run = cs["run"]
        if run is not None and abs(value - run[0]) <= 1e-9 * max(1.0, abs(value)):
            run[2], run[3] = t, run[3] + 1
        else:
            out = self._clear(rule, t) if rule in self.s["episodes"] else []
            cs["run"] = [value, t, t, 1]
            return out
        if run[3] < self.cfg.flatline_min_run or run[2] - run[1] < self.cfg.flatline_min_s:
            return []
        m = {"value": value, "run_length": run[3], "run_seconds": run[2] - run[1]}
        if rule not in self.s["episodes"]:
            vals = [p[1] for p in cs["buf"] if p[2] == "N"]
            step = R.resolution_step(vals)
            band = R.floor_band(vals, step, self.cfg.floors.get(code, 0.0))
            # a coarse step (> 5 % of the value) hides real variation: ask for a longer run
            need = self.cfg.flatline_min_run * (2 if step > 0.05 * abs(value) else 1)
            if value <= band or run[3] < need:
                return []
            m.update({"resolution_step": step, "floor_band": band, "required_run": need})
        return self._hold(rule, "flatline", code, run[1], t, m,
                          f"{code} constant at {value:g} for {run[3]} readings")

    def _spike(self, code: str, cs: dict[str, Any], t: float, value: float) -> list[Clue]:
        rule = f"spike/{code}"
        pre = self._spike_pre.get((code, t)) if self._spike_pre is not None else None
        if pre is not None:
            n, z = pre
        else:
            window = [p[1] for p in cs["buf"][-self.cfg.spike_window - 1:-1] if p[2] == "N"]
            if len(window) < self.cfg.spike_window // 2:
                return []
            n, z = len(window), R.robust_z(value, window)
        if n < self.cfg.spike_window // 2:
            return []
        if abs(z) > self.cfg.spike_z:
            window = [p[1] for p in cs["buf"][-self.cfg.spike_window - 1:-1] if p[2] == "N"]
            z = R.robust_z(value, window, R.resolution_step(window))
        if abs(z) > self.cfg.spike_z:
            return self._hold(rule, "spike", code, t, t,
                              {"value": value, "robust_z": round(z, 2),
                               "window_median": median(window)},
                              f"{code} spike {value:g} (robust z {z:.1f})", confidence=0.5)
        return self._clear(rule, t) if rule in self.s["episodes"] else []

    def _replay(self, t: float, values: dict[str, float]) -> list[Clue]:
        """Blocks of whole payloads seen before, in order: a resent history, not a flatline."""
        if len(values) < 2:
            return []
        rp = self.s["replay"]
        rp["n"] += 1
        rp["recent"] = (rp["recent"] + [R.payload_hash(values)])[-self.cfg.replay_block:]
        active, since = False, None
        if len(rp["recent"]) == self.cfg.replay_block and len(set(rp["recent"])) > 1:
            key = "".join(rp["recent"])
            prev = rp["tri"].get(key)
            if prev is not None and self.cfg.replay_block <= rp["n"] - prev[0] \
                    <= self.cfg.replay_window and self._block_info(values) \
                    >= self.cfg.replay_min_info:
                active, since = True, prev[1]
            rp["tri"][key] = [rp["n"], t]
            if len(rp["tri"]) > 2 * self.cfg.replay_window:
                rp["tri"] = {k: v for k, v in rp["tri"].items()
                             if rp["n"] - v[0] <= self.cfg.replay_window}
        if active:
            return self._hold("replay", "replay", None, t, t,
                              {"block": self.cfg.replay_block, "first_seen": self._dt(since)
                               .isoformat(), "information": self._block_info(values)},
                              "a block of payloads repeats earlier data")
        return self._clear("replay", t) if "replay" in self.s["episodes"] else []

    def _block_info(self, values: dict[str, float]) -> int:
        """How much a repeated block says: the distinct values per channel over the block's
        readings, summed over channels (at most channels x readings). Two channels sitting
        at a few values recur by chance at honest stations; six varying channels do not."""
        back = self.cfg.replay_block - 1
        info = 0
        for code, value in values.items():
            buf = self.s["codes"].get(code, {}).get("buf", [])
            info += len({value, *(p[1] for p in buf[-back:])}) if back else 1
        return info

    def _consistency(self, t: float, values: dict[str, float]) -> list[Clue]:
        out: list[Clue] = []
        checks: dict[str, tuple[str, dict[str, Any] | None, str]] = {}
        nox = R.nox_mismatch(values, self.cfg.nox_rel_tol)
        checks["consistency/a21002"] = ("inconsistent", nox, "NOx != NO*46/30 + NO2")
        for code, m in R.zs_mismatches(values, self.o2_refs, self.cfg.zs_rel_tol).items():
            checks[f"consistency/{code}-Zs"] = ("inconsistent", m,
                                                "corrected value breaks the O2 formula")
        o2 = values.get(O2)
        if o2 is not None and self.station.st == "31":
            m = {"o2": o2} if self.cfg.dilution_o2 <= o2 <= 21.0 else None
            checks["dilution/a19001"] = ("inconsistent", m, "flue-gas O2 near ambient air")
        for rule, (kind, m, summary) in checks.items():
            if m is not None:
                out += self._hold(rule, kind, None, t, t, m, summary)
            elif rule in self.s["episodes"]:
                out += self._clear(rule, t)
        return out


def analyze_series(readings: Iterable[Reading], station: StationInfo,
                   config: EnvConfig | None = None,
                   limits: LimitTable | None = None) -> list[Clue]:
    """Offline use: run a whole series through one monitor; returns every clue event."""
    mon = StationMonitor(station, config, limits)
    return mon.observe_many(list(readings)) + mon.flush()


def final_clues(events: Iterable[Clue]) -> list[Clue]:
    """Reduce events to the latest state of each episode (one clue per ``clue_id``)."""
    latest: dict[str, Clue] = {}
    for ev in events:
        prev = latest.get(ev.clue_id)
        if prev is not None and not ev.evidence and prev.evidence:
            ev = ev.model_copy(update={"evidence": prev.evidence})
        latest[ev.clue_id] = ev
    return list(latest.values())


def _factory(config: Any, subject: str, state: dict[str, Any] | None) -> StationMonitor:
    if state is not None:
        return StationMonitor.from_state(state, config)
    return StationMonitor(StationInfo(id=subject), config)


register(EnvConfig, _factory)
