"""Averaging-window rules of the env detector: exceedance, hugging, flag masking and share.

A mixin of ``StationMonitor`` (it uses the monitor's state dict, limits and episode methods),
kept apart so each module stays readable; the window arithmetic itself is in env_windows.
"""

from __future__ import annotations

from typing import Any

from contract.clue import Clue
from detectors import env_windows as W
from detectors.env_config import EnvConfig, StationInfo
from detectors.limits import Limit, LimitTable

BAD_FLAGS = ("M", "C", "F", "D")


class WindowRules:
    """Rules judged when an hour or day window closes."""

    # provided by StationMonitor
    s: dict[str, Any]
    cfg: EnvConfig
    limits: LimitTable
    standard: str
    station: StationInfo
    averagings: set[tuple[str, str]]
    off: float

    def _window(self, code: str, cs: dict[str, Any], t: float, value: float, flag: str,
                valid: bool, period: str, declared: int | None) -> list[Clue]:
        rank = W.RANK[period]
        if rank < cs["src"]:
            return []
        cs["src"] = rank
        out: list[Clue] = []
        hk, dk = W.hour_index(t, self.off), W.day_index(t, self.off)
        if cs["hour"] and cs["hour"]["k"] != hk:
            out += self._close_hour(code, cs)
        if cs["day"] and cs["day"]["k"] != dk:
            out += self._close_day(code, cs)
        if cs["day"] is None:
            cs["day"] = W.new_day(dk)
        day = cs["day"]
        day["raw"] += 1
        day["flags"][flag] = day["flags"].get(flag, 0) + 1
        if period == "day":
            day.update(s=value if valid else 0.0, n=24.0 if valid else 0.0, fs=value, fn=1)
            return out
        if period == "hour":
            cs["hour"] = {"sample_min": 60.0, **W.new_hour(hk)}
        elif cs["hour"] is None:
            interval = declared or self._interval() or (60.0 if period == "minute" else 30.0)
            cs["hour"] = {"sample_min": min(interval, 3600.0) / 60.0, **W.new_hour(hk)}
        W.add_sample(cs["hour"], value, valid)
        if period == "hour":
            out += self._close_hour(code, cs, weight=max(1.0, (declared or 3600) / 3600))
        return out

    def _close_hour(self, code: str, cs: dict[str, Any], weight: float = 1.0) -> list[Clue]:
        bucket, cs["hour"] = cs["hour"], None
        res = W.close_hour(bucket, bucket["sample_min"])
        if res is None:
            return []
        if cs["day"] is not None:
            W.add_hour(cs["day"], res, weight)
        if (code, "1h") not in self.averagings:
            return []
        t0 = res["k"] * W.HOUR - self.off
        return self._judge(code, "1h", t0, t0 + W.HOUR, res["mean"], res["all_mean"],
                           res["flagged"], {"valid_minutes": res["valid_minutes"]}, None)

    def _close_day(self, code: str, cs: dict[str, Any]) -> list[Clue]:
        day, cs["day"] = cs["day"], None
        res = W.close_day(day)
        if res is None:
            return []
        t0 = res["k"] * W.DAY - self.off
        out = self._flag_share(code, t0, res)
        if res["mean"] is not None:
            self.s["day_means"][code] = res["mean"]
        if (code, "24h") in self.averagings:
            flagged = sum(n for f, n in res["flags"].items() if f != "N")
            out += self._judge(code, "24h", t0, t0 + W.DAY, res["mean"], res["all_mean"],
                               flagged, {"valid_hours": res["valid_hours"]}, res["valid_hours"])
        return out

    def _flag_share(self, code: str, t0: float, res: dict[str, Any]) -> list[Clue]:
        rule = f"flag-share/{code}"
        bad = {f: n for f, n in res["flags"].items() if f in BAD_FLAGS}
        share = sum(bad.values()) / res["raw"] if res["raw"] else 0.0
        if share > self.cfg.flag_share:
            return self._hold(rule, "flag_abuse", code, t0, t0 + W.DAY - 1,
                              {"share": round(share, 3), "flags": bad, "readings": res["raw"]},
                              f"{code}: {share:.0%} of the day flagged M/C/F/D")
        return self._clear(rule, t0) if rule in self.s["episodes"] else []

    def _judge(self, code: str, avg: str, t0: float, t1: float, mean: float | None,
               all_mean: float | None, flagged: int, counts: dict[str, Any],
               valid_hours: float | None) -> list[Clue]:
        """Exceedance, hugging and flag masking for one closed averaging window."""
        start = self._dt(t0)
        lim = self.limits.applicable(self.standard, code, avg, start.date(), self.s["day_means"],
                                     self.station.adopted_from)
        if lim is None:
            return []
        ok = mean is not None and (valid_hours is None or valid_hours >= lim.min_valid)
        window = {"t0": t0, "t1": t1, "window": start.isoformat(),
                  "mean": round(mean, 4) if ok and mean is not None else None, **counts}
        out = self._exceedance(code, lim, t0, t1, ok and mean > lim.value, window)  # type: ignore[operator]
        out += self._hug(lim, t1, mean if ok else None)
        masked = (all_mean is not None and all_mean > lim.value and flagged > 0
                  and (not ok or mean <= lim.value))  # type: ignore[operator]
        rule = f"flag-mask/{lim.rule}"
        if masked:
            out += self._hold(rule, "flag_abuse", code, t0, t1 - 1,
                              {"all_values_mean": round(all_mean, 4), "valid_mean": window["mean"],
                               "flagged": flagged, "limit": lim.value},
                              f"{code}: flagged values hide a would-be exceedance",
                              confidence=0.6, limit=lim.value)
        elif rule in self.s["episodes"]:
            out += self._clear(rule, t0)
        return out

    def _exceedance(self, code: str, lim: Limit, t0: float, t1: float, exceeds: bool,
                    window: dict[str, Any]) -> list[Clue]:
        rule = lim.rule
        ep = self.s["episodes"].get(rule)
        out: list[Clue] = []
        if ep is not None and (not exceeds or ep["end"] != t0):
            out += self._clear(rule, t0)  # not consecutive or compliant: the episode ended
        if not exceeds:
            return out
        ep = self.s["episodes"].get(rule)
        windows = (ep["metrics"]["windows"] if ep else []) + [window]
        m = {"windows": windows[-31:], "exceeding_windows": (ep["n"] + 1) if ep else 1,
             "window_mean": window["mean"], "limit": lim.value, "unit": lim.unit,
             "averaging": lim.averaging, "standard": lim.standard, "min_valid": lim.min_valid,
             "max_mean": max(w["mean"] for w in windows[-31:])}
        if lim.o2_ref is not None:
            m.update(o2_ref=lim.o2_ref,
                     o2_corrected=bool(self.s["codes"][code].get("o2_corrected")))
        m.update({k: v for k, v in window.items() if k.startswith("valid")})
        out += self._hold(rule, "exceedance", code, t0, t1 - 1, m,
                          f"{code} {lim.averaging} mean {window['mean']:g} > {lim.value:g} "
                          f"{lim.unit} ({lim.standard})", limit=lim.value)
        self.s["episodes"][rule]["end"] = t1
        return out

    def _hug(self, lim: Limit, t: float, mean: float | None) -> list[Clue]:
        rule = f"hug/{lim.rule}"
        ratios = self._code(lim.code)["ratios"].setdefault(lim.rule, [])
        size = self.cfg.hug_window if lim.averaging == "24h" else self.cfg.hug_window_1h
        if mean is not None:
            ratios.append(mean / lim.value)
            del ratios[:-size]
        near = sum(1 for r in ratios if self.cfg.hug_band <= r <= 1.0)
        if (len(ratios) == size and max(ratios) <= 1.0
                and near >= self.cfg.hug_share * len(ratios)):
            return self._hold(rule, "near_limit", lim.code, t - 1, t - 1,
                              {"near_limit_windows": near, "windows": len(ratios),
                               "band": [self.cfg.hug_band * lim.value, lim.value],
                               "max_mean": round(max(ratios) * lim.value, 4),
                               "averaging": lim.averaging, "standard": lim.standard},
                              f"{lim.code}: {near}/{len(ratios)} windows just under the limit",
                              confidence=0.6, limit=lim.value)
        return self._clear(rule, t) if rule in self.s["episodes"] else []


