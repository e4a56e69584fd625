"""The day windows of the env fast path (``env_quiet``): the hourly entries of a quiet run
walked through ``_window``'s day sums, and each day that closes on the way checked for
anything ``_close_day`` could raise (flag share, 24-hour exceedance, hugging, masking).

Kept apart from ``env_quiet`` only for size; see that module for the contract: nothing here
decides a clue, it only proves that none is raised, with the same float operations in the
same order as the per-reading path so the state stays bit-identical.
"""

from __future__ import annotations

import operator
import weakref
from functools import reduce
from typing import TYPE_CHECKING, Any

import numpy as np

from detectors import env_windows as W
from detectors.env_judge import BAD_FLAGS
from detectors.limits import Limit, LimitTable

if TYPE_CHECKING:
    from detectors.env import StationMonitor
    from detectors.env_quiet import _Code

_CONDITIONAL: weakref.WeakKeyDictionary[LimitTable, dict[str, bool]] = \
    weakref.WeakKeyDictionary()


def conditional(limits: LimitTable, standard: str) -> bool:
    """Whether a limit row of the standard depends on other codes' day means."""
    known = _CONDITIONAL.setdefault(limits, {})
    if standard not in known:
        known[standard] = any(lim.condition for lim in limits.for_standard(standard))
    return known[standard]


def hour_limit(mon: StationMonitor, code: str, t: float) -> Limit | None:
    """The 1-hour limit ``_judge`` looks up for the hour holding ``t``."""
    t0 = W.hour_index(t, mon.off) * W.HOUR - mon.off
    return mon.limits.applicable(mon.standard, code, "1h", mon._dt(t0).date(),
                                 mon.s["day_means"], mon.station.adopted_from)


def day_walk(mon: StationMonitor, c: _Code, m: int, commit: bool) -> int:
    """Walk ``c``'s first ``m`` entries through the day windows as ``_window`` does (the same
    float additions in the same order); returns the first entry whose day change would not be
    quiet, or whose new day has another 1-hour limit. Changes the state if ``commit``; else
    works on copies and keeps them in ``c.walked`` when all entries passed (``_apply`` then
    installs them instead of walking again)."""
    cs = mon.s["codes"][c.code]
    day = cs["day"] if commit else dict(cs["day"], flags=dict(cs["day"]["flags"]))
    ratios = cs["ratios"] if commit else dict(cs["ratios"])  # lists are replaced, not changed
    means = mon.s["day_means"] if commit else {}
    hourly = (c.code, "1h") in mon.averagings
    days = np.floor_divide(np.array(c.t[:m]) + mon.off, W.DAY).astype(np.int64)
    cuts = (np.flatnonzero(np.diff(days)) + 1).tolist()
    for a, b in zip([0, *cuts], [*cuts, m], strict=True):  # one local day at a time
        if a == b:
            continue
        dk = int(days[a])
        if dk != day["k"]:
            if not c.cross or not _quiet_day_close(mon, c.code, day, ratios, means):
                return a
            day = W.new_day(dk)
            if commit:
                cs["day"] = day
            if hourly and hour_limit(mon, c.code, c.t[a]) != c.lim:
                return a
        _add_entries(day, c.flag[a:b], c.v[a:b], c.declared[a:b])
    if not commit:
        c.walked = (day, ratios, means)
    return m


def _add_entries(day: dict[str, Any], flags: list[str], values: list[float],
                 declared: list[int | None]) -> None:
    """``_window``'s day sums for hourly entries of one day: the same additions in the same
    order (``reduce`` folds left, as the reading-by-reading ``+=`` does; ``sum`` may not)."""
    day["raw"] += len(flags)
    for f in dict.fromkeys(flags):  # first-seen order, as one by one
        day["flags"][f] = day["flags"].get(f, 0) + flags.count(f)
    day["fs"] = reduce(operator.add, values, day["fs"])
    day["fn"] += len(values)
    if "N" not in day["flags"] or (len(day["flags"]) == 1 and day["n"].is_integer()
                                   and all((d or 3600) <= 3600 for d in declared)):
        # every entry valid with weight 1.0 (or none valid): v * 1.0 is v, and adding 1.0
        # k times to a whole number below 2**53 is adding k
        if "N" in day["flags"]:
            day["s"] = reduce(operator.add, values, day["s"])
            day["n"] += len(values)
        return
    weights = [max(1.0, (d or 3600) / 3600) for d, f in zip(declared, flags, strict=True)
               if f == "N"]
    valid = [v for v, f in zip(values, flags, strict=True) if f == "N"]
    day["s"] = reduce(operator.add, [v * w for v, w in zip(valid, weights, strict=True)],
                      day["s"])
    day["n"] = reduce(operator.add, weights, day["n"])


def _quiet_day_close(mon: StationMonitor, code: str, day: dict[str, Any],
                     store: dict[str, list[float]], means: dict[str, float]) -> bool:
    """Whether ``_close_day`` raises nothing on ``day`` (flag share, 24-hour exceedance,
    hugging, flag masking, open episodes); ``store`` gets the new hug ratios and ``means``
    the day's mean (the caller's copies, or the state itself)."""
    cfg, eps, s = mon.cfg, mon.s["episodes"], mon.s
    res = W.close_day(day)
    if res is None:
        return True
    bad = sum(n for f, n in res["flags"].items() if f in BAD_FLAGS)
    share = bad / res["raw"] if res["raw"] else 0.0
    if share > cfg.flag_share or f"flag-share/{code}" in eps:
        return False
    mean = res["mean"]
    if (code, "24h") in mon.averagings:
        t0 = res["k"] * W.DAY - mon.off
        lim = mon.limits.applicable(mon.standard, code, "24h", mon._dt(t0).date(),
                                    s["day_means"], mon.station.adopted_from)
        if lim is not None:
            if any(r in eps for r in (lim.rule, f"hug/{lim.rule}", f"flag-mask/{lim.rule}")):
                return False
            ok = mean is not None and res["valid_hours"] >= lim.min_valid
            if ok and mean > lim.value:
                return False
            flagged = sum(n for f, n in res["flags"].items() if f != "N")
            all_mean = res["all_mean"]
            if (all_mean is not None and all_mean > lim.value and flagged > 0
                    and (not ok or mean <= lim.value)):
                return False
            ratios = list(store.get(lim.rule, []))
            if ok:
                ratios = (ratios + [mean / lim.value])[-cfg.hug_window:]
            near = sum(1 for r in ratios if cfg.hug_band <= r <= 1.0)
            if (len(ratios) == cfg.hug_window and max(ratios) <= 1.0
                    and near >= cfg.hug_share * len(ratios)):
                return False
            store[lim.rule] = ratios
    if mean is not None:
        means[code] = mean
    return True
