"""Limit values as data: one row per (standard, code, averaging period, O2 reference, valid from).

Limits live in ``limits.csv`` next to this module rather than in code because provinces set
stricter values and standards get revised; a new row is a data change, not a release. The
detectors only ask "which limit applies to this code, for this station's standard, on this
date" and get back a row with everything needed to explain the verdict.
"""

from __future__ import annotations

import csv
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path

LIMITS_CSV = Path(__file__).with_name("limits.csv")

#: The standard a station falls under when its registry entry names none, by HJ 212 ST.
DEFAULT_STANDARD_BY_ST: dict[str, str] = {
    "22": "GB3095-2012/II",
    "31": "GB13223-2011/coal-existing",
    "32": "GB18918-2002/1A",
}

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class Limit:
    """One limit value and the rules needed to check it (averaging, O2 reference, validity)."""

    standard: str
    code: str
    averaging: str  # "1h" or "24h"
    o2_ref: float | None
    valid_from: date
    value: float
    unit: str
    min_valid: int  # valid hours per day (24h) or valid minutes per hour (1h)
    condition: str = ""  # e.g. "w01010<=12": this row replaces the plain one when it holds
    note: str = ""

    @cached_property
    def rule(self) -> str:
        """Rule name used in clues, e.g. ``GB3095-2012/II/a34004/24h``."""
        return f"{self.standard}/{self.code}/{self.averaging}"

    def condition_holds(self, means: Mapping[str, float]) -> bool:
        """Evaluate ``CODE<op>NUMBER`` against window means; unknown code means it does not hold."""
        if not self.condition:
            return True
        for sym in ("<=", ">=", "<", ">"):
            if sym in self.condition:
                code, raw = self.condition.split(sym, 1)
                value = means.get(code.strip())
                return value is not None and _OPS[sym](value, float(raw))
        raise ValueError(f"bad limit condition {self.condition!r}")


class LimitTable:
    """All known limits, with lookups by station standard, code, period and date."""

    def __init__(self, limits: Iterable[Limit]) -> None:
        self.limits: tuple[Limit, ...] = tuple(limits)
        # (standard, code, averaging) -> rows: ``applicable`` runs on every closed window of
        # every code, and scanning all rows each time was a tenth of the detector's CPU
        self._rows: dict[tuple[str, str, str], list[Limit]] = {}
        for lim in self.limits:
            self._rows.setdefault((lim.standard, lim.code, lim.averaging), []).append(lim)
        self._force: dict[tuple[str, str, str, date, date | None], list[Limit]] = {}

    @classmethod
    def load(cls, path: Path | str | None = None) -> LimitTable:
        """Read a limits CSV (the packaged one by default)."""
        with open(path or LIMITS_CSV, newline="", encoding="utf-8") as fh:
            return cls(_row_to_limit(row) for row in csv.DictReader(fh))

    def standards(self) -> set[str]:
        return {lim.standard for lim in self.limits}

    def for_standard(self, standard: str) -> list[Limit]:
        """Every row of one standard (all codes, periods, versions and conditions)."""
        found = [lim for lim in self.limits if lim.standard == standard]
        if not found:
            raise KeyError(f"unknown standard {standard!r}; known: {sorted(self.standards())}")
        return found

    def _in_force(self, standard: str, code: str, averaging: str, on: date,
                  adopted_from: date | None) -> list[Limit]:
        """The rows of the latest version in force on ``on``, conditional ones included.

        Memoised: the answer changes once a day at most, and ``applicable`` is asked on
        every closed window of every code.
        """
        key = (standard, code, averaging, on, adopted_from)
        found = self._force.get(key)
        if found is not None:
            return found
        rows = self._rows.get((standard, code, averaging), [])
        current: list[Limit] = []
        if rows:
            first = min(lim.valid_from for lim in rows)
            start = min(first, adopted_from) if adopted_from else first
            current = [lim for lim in rows
                       if on >= (start if lim.valid_from == first else lim.valid_from)]
        if current:
            latest = max(lim.valid_from for lim in current)
            current = [lim for lim in current if lim.valid_from == latest]
        if len(self._force) > 100_000:  # years of days x codes: bound it anyway
            self._force.clear()
        self._force[key] = current
        return current

    def applicable(self, standard: str, code: str, averaging: str, on: date,
                   means: Mapping[str, float] | None = None,
                   adopted_from: date | None = None) -> Limit | None:
        """The limit in force on ``on``: the latest version, a conditional row if it holds.

        ``adopted_from`` lets a region that adopted the standard before its national date
        (Beijing applied GB 3095-2012 from 2013) move the first version's start earlier.
        """
        current = self._in_force(standard, code, averaging, on, adopted_from)
        if not current:
            return None
        conditional = [lim for lim in current if lim.condition and lim.condition_holds(means or {})]
        plain = [lim for lim in current if not lim.condition]
        return (conditional or plain or [None])[0]


def standard_for(st: str | None, registered: str | None = None) -> str:
    """The station's standard: its registry entry wins, else the default for its ST."""
    if registered:
        return registered
    try:
        return DEFAULT_STANDARD_BY_ST[str(st)]
    except KeyError:
        raise KeyError(f"no standard registered and no default for ST={st!r}") from None


def o2_correct(conc: float, o2_measured: float, o2_ref: float) -> float | None:
    """Convert to the reference O2 content: ``C * (21 - O2_ref) / (21 - O2_meas)``.

    Returns None when the measured O2 is at or above ambient air (20.9 %): the formula blows
    up there and the reading says "diluted or not in operation", not "compliant".
    """
    if not 0.0 <= o2_measured < 20.9:
        return None
    return conc * (21.0 - o2_ref) / (21.0 - o2_measured)


def _row_to_limit(row: dict[str, str]) -> Limit:
    return Limit(
        standard=row["standard"].strip(),
        code=row["code"].strip(),
        averaging=row["averaging"].strip(),
        o2_ref=float(row["o2_ref"]) if row.get("o2_ref", "").strip() else None,
        valid_from=date.fromisoformat(row["valid_from"].strip()),
        value=float(row["value"]),
        unit=row["unit"].strip(),
        min_valid=int(row["min_valid"]),
        condition=(row.get("condition") or "").strip(),
        note=(row.get("note") or "").strip(),
    )
