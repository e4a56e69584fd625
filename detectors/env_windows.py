"""Averaging windows as the standards define them, on plain dicts (JSON-ready state).

Hour windows take minute/real-time values (valid when they cover >= 45 minutes) or one hour
reading; day windows take hourly means and are valid with >= the limit's minimum of valid
hours (20 for GB 3095). Only flag N counts as valid; all values are also averaged so a
detector can see what flagged data would have shown.
"""

from __future__ import annotations

from typing import Any

HOUR = 3600.0
DAY = 86400.0
RANK = {"day": 0, "rtd": 1, "minute": 2, "hour": 3}


def hour_index(t: float, offset_s: float) -> int:
    return int((t + offset_s) // HOUR)


def day_index(t: float, offset_s: float) -> int:
    return int((t + offset_s) // DAY)


def new_hour(k: int) -> dict[str, Any]:
    return {"k": k, "s": 0.0, "n": 0, "fs": 0.0, "fn": 0}


def new_day(k: int) -> dict[str, Any]:
    return {"k": k, "s": 0.0, "n": 0.0, "fs": 0.0, "fn": 0, "flags": {}, "raw": 0}


def add_sample(bucket: dict[str, Any], value: float, valid: bool) -> None:
    bucket["fs"] += value
    bucket["fn"] += 1
    if valid:
        bucket["s"] += value
        bucket["n"] += 1


def close_hour(bucket: dict[str, Any], sample_minutes: float,
               min_minutes: float = 45.0) -> dict[str, Any] | None:
    """Hourly result of sub-hourly samples; ``mean`` is None when coverage is too short."""
    if bucket["fn"] == 0:
        return None
    covered = min(60.0, bucket["n"] * sample_minutes)
    valid = covered >= min_minutes and bucket["n"] > 0
    return {"k": bucket["k"], "mean": bucket["s"] / bucket["n"] if valid else None,
            "all_mean": bucket["fs"] / bucket["fn"], "valid_minutes": covered,
            "flagged": bucket["fn"] - bucket["n"]}


def add_hour(day: dict[str, Any], hour: dict[str, Any], weight: float = 1.0) -> None:
    """Feed one hourly result into its day; ``weight`` > 1 for sparser-than-hourly data."""
    day["fs"] += hour["all_mean"]
    day["fn"] += 1
    if hour["mean"] is not None:
        day["s"] += hour["mean"] * weight
        day["n"] += weight


def close_day(day: dict[str, Any]) -> dict[str, Any] | None:
    if day["fn"] == 0 and not day["raw"]:
        return None
    return {"k": day["k"], "mean": day["s"] / day["n"] if day["n"] else None,
            "valid_hours": min(24.0, day["n"]),
            "all_mean": day["fs"] / day["fn"] if day["fn"] else None,
            "flags": dict(day["flags"]), "raw": day["raw"]}
