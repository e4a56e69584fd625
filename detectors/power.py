"""Power monitoring of pollution-control equipment (用电监控, 分表计电): the rules.

An entity's production line and its treatment equipment (dust collector, desulphurisation,
wastewater plant) each have their own meter channel. The treatment must run whenever the
production does; power is the cheapest off-site proof that it did. Four rules, one clue
per episode, all judged on the samples' own times (never a clock):

* ``treatment_off``: a treatment channel below its ``idle_kw`` while production runs, for
  at least ``min_episode_s``, once production has run for ``grace_s`` (the start-up grace:
  regulations want treatment started before production, so the grace is short);
* ``treatment_idle``: a treatment channel running, but below ``idle_ratio`` of its usual
  load at the present production level, for at least ``min_episode_s``. The usual load is
  learnt per channel and per production-level band (a third of rated production each) as an
  exponentially weighted mean of normal samples; nothing is judged before ``learn_samples``
  normal samples of the band, and suspicious samples are not learnt, so a plant that idles
  its fans for weeks cannot teach the rule that idling is usual;
* ``production_in_shutdown``: production running during a declared shutdown (a heavy
  pollution emergency list) that applies to the entity, for at least ``min_episode_s``;
* ``meter_offline``: a meter silent for longer than ``offline_s`` (from the data: the gap
  before its next reading; in the stream also ``tick(now)`` with the worker's clock).

Each channel's value is held from its last reading until it is ``stale_s`` old, because
meters of one entity report at their own moments; a stale channel is unknown, and nothing is
judged on an unknown side. Production "runs" when any production channel is above its own
``idle_kw`` (the standby draw of the line).

State is JSON data (a Faust table keyed by entity holds it) and bounded: per channel the
last value and a few learnt means, per open episode its start and running sums, and a short
history for the evidence plot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from contract.clue import Clue, EvidenceRef
from detectors.plugin import DetectorConfig, register
from detectors.power_evidence import PowerPlot

DETECTOR = "offsite.power"
VERSION = "1"
KINDS = ("treatment_off", "treatment_idle", "production_in_shutdown", "meter_offline")
Role = Literal["production", "treatment"]
HISTORY = 240  # samples kept for the evidence plot (a few hours at minute data)
BANDS = 3


class Channel(BaseModel):
    """One metered channel of an entity (a row of ``power_channels.csv``)."""

    model_config = ConfigDict(frozen=True)

    entity: str
    meter: str
    channel: str
    role: Role
    rated_kw: float | None = None
    idle_kw: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.meter}/{self.channel}"


@dataclass(frozen=True)
class Shutdown:
    """A declared shutdown (``shutdowns.csv`` or the API) that applies to the entity."""

    scope: str
    level: str
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        return f"{self.scope}@{self.start.astimezone(UTC).isoformat()}"


class PowerConfig(DetectorConfig):
    """Thresholds of the power rules (README, "Power monitoring"); seconds of data time."""

    type: Literal["power"] = "power"
    grace_s: float = 300.0
    min_episode_s: float = 600.0
    stale_s: float = 1800.0
    offline_s: float = 3600.0
    idle_ratio: float = 0.5
    learn_samples: int = 20
    learn_alpha: float = 0.05
    channels: list[Channel] = []


@dataclass(frozen=True)
class Sample:
    """One meter's reading: its channel values in kW at one instant."""

    meter: str
    time: datetime
    values: dict[str, float]


OnPlot = Callable[[EvidenceRef, PowerPlot], None]


class EntityMonitor:
    """The power rules of one entity; ``observe`` samples in time order, get clue events."""

    def __init__(self, entity: str, channels: Sequence[Channel],
                 config: PowerConfig | None = None, state: dict[str, Any] | None = None,
                 location: dict[str, Any] | None = None, on_plot: OnPlot | None = None) -> None:
        self.entity = entity
        self.channels = {c.key: c for c in channels if c.entity == entity}
        self.cfg = config or PowerConfig()
        self.location = location
        self.on_plot = on_plot
        self.shutdowns: list[Shutdown] = []
        self.s: dict[str, Any] = state or {"last": {}, "seen": {}, "usual": {},
                                           "run_since": None, "cond": {}, "open": {},
                                           "history": []}

    # -- public --------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return self.s

    def observe(self, sample: Sample) -> list[Clue]:
        """Feed one meter reading (channels the registry does not list are ignored)."""
        t = sample.time.timestamp()
        out: list[Clue] = []
        seen = self.s["seen"].get(sample.meter)
        if seen is not None and t < seen:
            return []  # late: the rules have judged past it (re-deliveries come with old state)
        if seen is not None and t - seen > self.cfg.offline_s:
            out += self._offline_closed(sample.meter, seen, t)
        elif sample.meter in self.s["open"].get("meter_offline", {}):
            out += self._offline_closed(sample.meter, seen or t, t)
        self.s["seen"][sample.meter] = t
        for name, value in sample.values.items():
            key = f"{sample.meter}/{name}"
            if key in self.channels:
                self.s["last"][key] = [t, float(value)]
        out += self._judge(t)
        return out

    def tick(self, now: datetime) -> list[Clue]:
        """Open ``meter_offline`` for meters silent longer than ``offline_s`` at ``now``."""
        out: list[Clue] = []
        t = now.timestamp()
        opened = self.s["open"].setdefault("meter_offline", {})
        for meter, seen in self.s["seen"].items():
            if meter not in opened and t - seen > self.cfg.offline_s:
                opened[meter] = {"t0": seen}
                out.append(self._clue("meter_offline", meter, "*", "open", seen, t,
                                      {"gap_s": t - seen}, None))
        return out

    def flush(self) -> list[Clue]:
        """Nothing to close at the end of a file: open episodes stay open (latest state)."""
        return []

    # -- judging ------------------------------------------------------------------------

    def _fresh(self, key: str, t: float) -> float | None:
        last = self.s["last"].get(key)
        if last is None or t - last[0] > self.cfg.stale_s:
            return None
        return float(last[1])

    def _judge(self, t: float) -> list[Clue]:
        prod = [(c, self._fresh(k, t)) for k, c in self.channels.items()
                if c.role == "production"]
        known = [(c, v) for c, v in prod if v is not None]
        if not known:
            return self._end_all(t, ("treatment_off", "treatment_idle",
                                     "production_in_shutdown"))
        prod_kw = sum(v for _, v in known)
        running = any(v > c.idle_kw for c, v in known)
        rated = sum(c.rated_kw or 0.0 for c, _ in known)
        band = min(BANDS - 1, int(BANDS * prod_kw / rated)) if rated > 0 else 0
        self._history(t, prod_kw)
        if not running:
            self.s["run_since"] = None
            return self._end_all(t, ("treatment_off", "treatment_idle",
                                     "production_in_shutdown"))
        if self.s["run_since"] is None:
            self.s["run_since"] = t
        out: list[Clue] = []
        settled = t - self.s["run_since"] >= self.cfg.grace_s
        for key, chan in self.channels.items():
            if chan.role != "treatment":
                continue
            value = self._fresh(key, t)
            if value is None:
                out += self._cond("treatment_off", key, False, t, prod_kw, None, chan)
                out += self._cond("treatment_idle", key, False, t, prod_kw, None, chan)
                continue
            usual = self._usual(key, band)
            off = value < chan.idle_kw
            idle = (not off and usual is not None
                    and value < self.cfg.idle_ratio * usual)
            out += self._cond("treatment_off", key, off and settled, t, prod_kw, value, chan)
            out += self._cond("treatment_idle", key, idle and settled, t, prod_kw, value,
                              chan, usual)
            if not off and not idle:
                self._learn(key, band, value)
        shutdown = self._shutdown_at(t)
        out += self._cond("production_in_shutdown", "*", shutdown is not None, t, prod_kw,
                          None, None, shutdown=shutdown)
        return out

    def _usual(self, key: str, band: int) -> float | None:
        learnt = self.s["usual"].get(key, {}).get(str(band))
        if learnt is None or learnt[1] < self.cfg.learn_samples:
            return None
        return float(learnt[0])

    def _learn(self, key: str, band: int, value: float) -> None:
        bands = self.s["usual"].setdefault(key, {})
        mean, n = bands.get(str(band), [value, 0])
        alpha = max(self.cfg.learn_alpha, 1.0 / (n + 1))  # a plain mean while few samples
        bands[str(band)] = [mean + alpha * (value - mean), n + 1]

    def _shutdown_at(self, t: float) -> Shutdown | None:
        for s in self.shutdowns:
            if s.start.timestamp() <= t < s.end.timestamp():
                return s
        return None

    def _history(self, t: float, prod_kw: float) -> None:
        row = [t, prod_kw, {k: v for k in self.channels
                            if self.channels[k].role == "treatment"
                            and (v := self._fresh(k, t)) is not None}]
        hist = self.s["history"]
        if hist and hist[-1][0] == t:
            hist[-1] = row
        else:
            hist.append(row)
        del hist[:-HISTORY]

    # -- episodes -----------------------------------------------------------------------

    def _cond(self, kind: str, key: str, active: bool, t: float, prod_kw: float,
              value: float | None, chan: Channel | None, usual: float | None = None,
              shutdown: Shutdown | None = None) -> list[Clue]:
        """Track one condition; the episode opens after ``min_episode_s`` and closes when
        the condition ends (the end is the last sample that still showed it)."""
        conds = self.s["cond"].setdefault(kind, {})
        opened = self.s["open"].setdefault(kind, {})
        if not active:
            conds.pop(key, None)
            if key in opened:
                return [self._close(kind, key, opened.pop(key))]
            return []
        c = conds.get(key)
        if c is None:
            c = conds[key] = {"t0": t, "t1": t, "n": 0, "prod": 0.0, "val": 0.0,
                              "limit": None, "level": None}
        c["t1"], c["n"] = t, c["n"] + 1
        c["prod"] += prod_kw
        c["val"] += value if value is not None else 0.0
        if chan is not None and kind == "treatment_off":
            c["limit"] = chan.idle_kw
        elif usual is not None:
            c["limit"] = self.cfg.idle_ratio * usual
        if shutdown is not None:
            c["level"], c["shutdown"] = shutdown.level, shutdown.key
        if key in opened:
            opened[key] = dict(c)
            return []
        if c["t1"] - c["t0"] >= self.cfg.min_episode_s:
            opened[key] = dict(c)
            return [self._emit(kind, key, "open", c)]
        return []

    def _close(self, kind: str, key: str, c: dict[str, Any]) -> Clue:
        return self._emit(kind, key, "closed", c)

    def _end_all(self, t: float, kinds: Iterable[str]) -> list[Clue]:
        out: list[Clue] = []
        for kind in kinds:
            self.s["cond"].pop(kind, None)
            for key, c in list(self.s["open"].get(kind, {}).items()):
                out.append(self._close(kind, key, c))
                del self.s["open"][kind][key]
        return out

    def _emit(self, kind: str, key: str, state: str, c: dict[str, Any]) -> Clue:
        meter, _, channel = key.partition("/")
        n = max(1, c["n"])
        metrics = {"samples": c["n"], "production_kw_mean": c["prod"] / n,
                   "limit": c["limit"], "duration_s": c["t1"] - c["t0"]}
        if kind in ("treatment_off", "treatment_idle"):
            metrics["value"] = c["val"] / n
        else:
            metrics["value"] = c["prod"] / n
            metrics["level"] = c.get("level")
            metrics["shutdown"] = c.get("shutdown")
        return self._clue(kind, meter or "*", channel or "*", state, c["t0"], c["t1"],
                          metrics, c)

    def _offline_closed(self, meter: str, seen: float, t: float) -> list[Clue]:
        self.s["open"].setdefault("meter_offline", {}).pop(meter, None)
        return [self._clue("meter_offline", meter, "*", "closed", seen, t,
                           {"gap_s": t - seen}, None)]

    def _clue(self, kind: str, meter: str, channel: str, state: str, t0: float, t1: float,
              metrics: dict[str, Any], c: dict[str, Any] | None) -> Clue:
        start = datetime.fromtimestamp(t0, UTC)
        time = datetime.fromtimestamp(t1, UTC)
        rule = f"power/{kind}/{meter}/{channel}" if kind != "production_in_shutdown" \
            else f"power/{kind}"
        what = {"treatment_off": f"treatment {meter}/{channel} off while production runs",
                "treatment_idle": f"treatment {meter}/{channel} idling below its usual load",
                "production_in_shutdown": "production during a declared shutdown"
                                          f" ({metrics.get('level')})",
                "meter_offline": f"meter {meter} silent"}[kind]
        clue = Clue(modality="power", kind=kind, rule=rule, subject=self.entity, state=state,
                    start=start, time=time, end=time if state == "closed" else None,
                    confidence=0.9 if kind != "meter_offline" else 0.6,
                    location=self.location, summary=f"{self.entity}: {what}",
                    metrics={"entity": self.entity, "meter": None if meter == "*" else meter,
                             "channel": None if channel == "*" else channel, **metrics},
                    detector=DETECTOR, detector_version=VERSION)
        if self.on_plot is not None and c is not None and state in ("open", "closed"):
            ref = EvidenceRef(media_type="image/png", name=f"{kind}-{meter}-{channel}.png")
            self.on_plot(ref, self._plot(kind, f"{meter}/{channel}", t0, t1, c))
            clue.evidence.append(ref)
        return clue

    def _plot(self, kind: str, key: str, t0: float, t1: float, c: dict[str, Any]) -> PowerPlot:
        since = t0 - max(7200.0, 2 * (t1 - t0))  # the episode and what led to it
        hist = [h for h in self.s["history"] if h[0] >= since]
        times = [datetime.fromtimestamp(h[0], UTC) for h in hist]
        treat = {k: [h[2].get(k) for h in hist] for k, ch in self.channels.items()
                 if ch.role == "treatment" and (key.endswith("/*") or k == key)}
        return PowerPlot(title=f"{self.entity} {kind}", times=times,
                         production=[h[1] for h in hist], treatment=treat,
                         limit=c.get("limit"),
                         shade=(datetime.fromtimestamp(t0, UTC), datetime.fromtimestamp(t1, UTC)))


def monitor_factory(config: PowerConfig, subject: str,
                    state: dict[str, Any] | None) -> EntityMonitor:
    """The plug-in factory: the entity's channels come with the config (the registry's)."""
    return EntityMonitor(subject, config.channels, config, state)


register(PowerConfig, monitor_factory)
