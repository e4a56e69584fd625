"""Detection quality of the env detector on the real Dongsi record (issue 4, item 7).

Run: ``.venv/bin/python -m bench.bench_env_quality [SEED]``

1. PM2.5 daily exceedances against an independent group-by of the CSV (GB 3095-2012 Grade
   II, >= 20 valid hours), the standard applied over the whole record (``adopted_from``
   2013-01-01; by default the detector applies GB 3095-2012 from 2016-01-01 only).
2. Real data alone: flatline clues on floor-level SO2 (expected none), and offline clues
   against the record's own gaps (> 3 h without a row).
3. Injection: known flatlines, gaps, spikes and near-limit runs planted in the real series at
   seeded random times, one per 15-day slot. A clue of the doctored series that overlaps no
   clue of the same kind and code on the clean series (within an hour) counts as a
   detection; it is a true positive when its kind and code match an injected event whose
   interval it overlaps. Precision and recall per kind.
"""

from __future__ import annotations

import csv
import random
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from contract.records import Reading
from detectors.env import analyze_series, final_clues
from detectors.env_config import EnvConfig, StationInfo
from detectors.env_contract import to_contract
from detectors.env_io import read_beijing

DONGSI = "samples/sensors/beijing_dongsi_2013-2017.csv"
INFO = StationInfo(id="dongsi", adopted_from=date(2013, 1, 1))
CFG = EnvConfig(evidence=False)
SLOT_H = 15 * 24
H = timedelta(hours=1)
PM25, NO2, CO = "a34004", "a21004", "a21005"


def contract(readings: list[Reading]) -> list[dict[str, Any]]:
    return [to_contract(c) for c in final_clues(analyze_series(readings, INFO, CFG))]


def same(c: dict[str, Any], b: dict[str, Any]) -> bool:
    """A clue of the doctored run that the clean run had already (maybe re-cut by a gap)."""
    (s1, e1), (s2, e2) = span(c), span(b)
    return c["code"] == b["code"] and s1 <= e2 + H and s2 <= e1 + H


def span(c: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(c["start"]), datetime.fromisoformat(c["end"])


def expected_pm25_days() -> set[date]:
    hours: dict[date, list[float]] = defaultdict(list)
    with open(DONGSI, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["PM2.5"] != "NA":
                hours[date(int(row["year"]), int(row["month"]), int(row["day"]))].append(
                    float(row["PM2.5"]))
    return {d for d, v in hours.items() if len(v) >= 20 and sum(v) / len(v) > 75}


def reported_days(clues: list[dict[str, Any]]) -> set[date]:
    days: set[date] = set()
    for c in clues:
        if c["kind"] == "exceedance" and c["code"] == PM25:
            start, end = span(c)
            d = start.date()
            while d < end.date():
                days.add(d)
                d += timedelta(days=1)
    return days


def contiguous(readings: list[Reading], i: int, n: int, codes: tuple[str, ...] = ()) -> bool:
    """Readings i..i+n-1 are hourly without holes and carry ``codes``."""
    if i < 1 or i + n + 1 >= len(readings):
        return False
    window = readings[i - 1:i + n + 1]
    return all(b.time - a.time == H for a, b in zip(window, window[1:], strict=False)) and all(
        c in r.values for r in window for c in codes)


def inject(clean: list[Reading], seed: int) -> tuple[list[Reading], list[dict[str, Any]]]:
    """Plant one event per 15-day slot (kinds shuffled); returns the series and the truth."""
    rng = random.Random(seed)
    rs = [r.model_copy(deep=True) for r in clean]
    slots = list(range(1, len(rs) // SLOT_H - 1))
    kinds = (["flatline"] * 20 + ["offline"] * 20 + ["spike"] * 30 + ["near_limit"] * 8)
    rng.shuffle(slots)
    truth: list[dict[str, Any]] = []
    drop: set[int] = set()
    for kind, slot in zip(kinds, slots, strict=False):
        for _ in range(50):  # a random place in the slot where the data allows the event
            i = slot * SLOT_H + rng.randrange(0, SLOT_H - 13 * 24)
            if kind == "flatline":
                code = rng.choice((NO2, CO))
                n = rng.randrange(8, 25)
                if not contiguous(rs, i, n, (code,)):
                    continue
                vals = sorted(r.values[code] for r in rs[i - 48:i] if code in r.values)
                if not vals:
                    continue
                value = round(vals[len(vals) // 2] * 1.0 + (10 if code == NO2 else 0.5), 1)
                for r in rs[i:i + n]:
                    r.values[code] = value
                truth.append({"kind": kind, "code": code, "start": rs[i].time,
                              "end": rs[i + n - 1].time + H, "n": n, "value": value})
            elif kind == "offline":
                n = rng.randrange(4, 49)
                if not contiguous(rs, i, n):
                    continue
                drop.update(range(i, i + n))
                truth.append({"kind": kind, "code": None, "start": rs[i - 1].time,
                              "end": rs[i + n].time, "n": n})
            elif kind == "spike":
                code = rng.choice((NO2, PM25, CO))
                if not contiguous(rs, i - 48, 49, (code,)):
                    continue
                window = sorted(r.values[code] for r in rs[i - 48:i])
                value = round(window[-1] * rng.uniform(3, 6) + (50 if code != CO else 2), 1)
                rs[i].values[code] = value
                truth.append({"kind": kind, "code": code, "start": rs[i].time,
                              "end": rs[i].time + H, "value": value})
            else:  # near_limit: 12 days whose PM2.5 daily means sit at 90-99 % of 75
                first = rs[i].time.replace(hour=0) + timedelta(days=1)
                end = first + timedelta(days=12)
                days: dict[date, list[Reading]] = defaultdict(list)
                for r in rs[i:i + 14 * 24]:
                    if first <= r.time < end and PM25 in r.values:
                        days[r.time.date()].append(r)
                if sum(1 for d in days.values() if len(d) >= 20) < 10:
                    continue  # the record's own holes: too few valid days here
                for day in days.values():  # scale each day's hours to a mean of 90-99 %
                    mean = sum(r.values[PM25] for r in day) / len(day)
                    target = 75 * rng.uniform(0.90, 0.99)
                    for r in day:
                        r.values[PM25] = r.values[PM25] * target / max(mean, 1e-6)
                truth.append({"kind": kind, "code": PM25, "start": first, "end": end})
            break
    return [r for k, r in enumerate(rs) if k not in drop], truth


def score(new: list[dict[str, Any]], truth: list[dict[str, Any]],
          kinds: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    out = {}
    for kind in kinds:
        events = [t for t in truth if t["kind"] == kind]
        found = [c for c in new if c["kind"] == kind]

        def hit(c: dict[str, Any], t: dict[str, Any]) -> bool:
            s, e = span(c)
            return c["code"] == t["code"] and s <= t["end"] and e >= t["start"] - H

        tp_clues = sum(1 for c in found if any(hit(c, t) for t in events))
        tp_events = sum(1 for t in events if any(hit(c, t) for c in found))
        out[kind] = {"injected": len(events), "found": tp_events, "new_clues": len(found),
                     "precision": tp_clues / len(found) if found else float("nan"),
                     "recall": tp_events / len(events) if events else float("nan")}
    return out


def real_gaps(readings: list[Reading]) -> int:
    return sum(1 for a, b in zip(readings, readings[1:], strict=False)
               if (b.time - a.time).total_seconds() > 3 * 3600)


def main(seed: int = 4) -> dict[str, Any]:
    clean = list(read_beijing(DONGSI, "dongsi"))
    base = contract(clean)
    expected, reported = expected_pm25_days(), reported_days(base)
    tp = len(expected & reported)
    print(f"Dongsi {clean[0].time:%Y-%m-%d}..{clean[-1].time:%Y-%m-%d}, {len(clean)} hourly "
          "readings, GB 3095-2012 Grade II applied from 2013-01-01")
    print(f"PM2.5 days over 75 ug/m3 (>= 20 valid h): expected {len(expected)}, reported "
          f"{len(reported)}, precision {tp / len(reported):.3f}, recall {tp / len(expected):.3f}")
    so2_flat = [c for c in base if c["kind"] == "flatline" and c["code"] == "a21026"]
    offline = [c for c in base if c["kind"] == "offline"]
    print(f"real data: SO2 flatline clues {len(so2_flat)}; offline clues {len(offline)} for "
          f"{real_gaps(clean)} gaps > 3 h in the record")
    baseline = defaultdict(int)
    for c in base:
        baseline[c["kind"]] += 1
    print("clean-series clues by kind: " + ", ".join(f"{k} {n}" for k, n in
                                                      sorted(baseline.items())))
    doctored, truth = inject(clean, seed)
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in base:
        by_kind[c["kind"]].append(c)
    new = [c for c in contract(doctored) if not any(same(c, b) for b in by_kind[c["kind"]])]
    result = score(new, truth, ("flatline", "offline", "spike", "near_limit"))
    print(f"injected events (seed {seed}):")
    print("| kind | injected | found | new clues | precision | recall |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind, r in result.items():
        print(f"| {kind} | {r['injected']} | {r['found']} | {r['new_clues']} | "
              f"{r['precision']:.2f} | {r['recall']:.2f} |")
    for t in truth:
        if not any(c["kind"] == t["kind"] and c["code"] == t["code"]
                   and span(c)[0] <= t["end"] and span(c)[1] >= t["start"] - H for c in new):
            print(f"missed: {t['kind']} {t['code']} {t['start']:%Y-%m-%d %H:%M} "
                  + ", ".join(f"{k}={t[k]}" for k in ("n", "value") if k in t))
    near: dict[str, int] = defaultdict(int)
    for c in new:
        if c["kind"] == "spike" and not any(
                t["kind"] == "spike" and t["code"] == c["code"]
                and abs(span(c)[0] - t["start"]) <= H for t in truth):
            s0 = span(c)[0]
            close = [t["kind"] for t in truth if t["start"] - timedelta(days=2) <= s0
                     <= t["end"] + timedelta(days=2)]
            near[close[0] if close else "none"] += 1
    print("unmatched new spike clues, by the injected event within 2 days: "
          + ", ".join(f"{k} {n}" for k, n in sorted(near.items())))
    other = defaultdict(int)
    for c in new:
        if c["kind"] not in result:
            other[c["kind"]] += 1
    print("other new clues on the doctored series: " + (", ".join(
        f"{k} {n}" for k, n in sorted(other.items())) or "none"))
    return {"pm25": (len(expected), len(reported), tp), "so2_flatline": len(so2_flat),
            "injected": result, "truth": truth, "new": new}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
