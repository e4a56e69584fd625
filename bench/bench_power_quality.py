"""Power rules on a real factory's machine power (IMDELD): what the real series raises, and
precision and recall on treatment-off episodes injected into it.

IMDELD (de Mello Martins et al. 2018; CC BY-NC-SA, used from ``../shared/data`` and never
copied into the project) metered eight machines of a Brazilian animal-feed factory: two
exhaust fans on the dust-extraction side (channels 3 and 4, about 3.3 and 5.6 kW when on)
and mills and pelletizers on the production side (channels 5 to 8, 25 to 90 kW). The fans
stand for the treatment equipment, the production machines for the line, as in a Chinese
用电监控 installation.

Injection: on a copy of the real series, pick windows where production runs and both fans
run, and force both fans to a residual draw of 0 to 0.3 kW for 15 minutes to 4 hours (the
lengths of a dust collector switched off for a shift or part of one). An injected episode
is found when a ``treatment_off`` clue overlaps it; a clue that overlaps no injection and
was not already raised on the untouched series is a false alarm. Injections that the data
cannot show (fewer than two samples inside, or less than the rule's minimum duration
between its first and last sample inside) are counted apart: no rule could see them.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from detectors.power import Channel, EntityMonitor, PowerConfig, Sample

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sensors" / "imdeld"
FILES = ("imdeld_machines_2018-02-21_03-31.csv", "imdeld_machines_training_unsorted.csv")
BRT = timezone(timedelta(hours=-3))  # the factory's local time (Brazil)
FANS = ("ap3", "ap4")
CHANNELS = [Channel(entity="FEED", meter="IMDELD", channel=f"ap{i}", role=role,
                    rated_kw=rated, idle_kw=idle)
            for i, role, rated, idle in ((3, "treatment", 4, 0.5), (4, "treatment", 7, 0.5),
                                         (5, "production", 40, 5), (6, "production", 40, 5),
                                         (7, "production", 90, 5), (8, "production", 90, 5))]
DURATIONS_MIN = (15, 30, 60, 120, 240)


@dataclass
class Row:
    time: datetime
    kw: dict[str, float]


def load(name: str) -> list[Row]:
    rows = []
    with (DATA / name).open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            when = datetime.strptime(r["timestamp"], "%d-%b-%Y %H:%M:%S").replace(tzinfo=BRT)
            rows.append(Row(when, {f"ap{i}": float(r[f"active_power_{i}"]) / 1000
                                   for i in range(3, 9)}))
    rows.sort(key=lambda r: r.time)
    return [r for i, r in enumerate(rows) if i == 0 or r.time != rows[i - 1].time]


def clues_of(rows: list[Row], config: PowerConfig) -> list[Any]:
    monitor = EntityMonitor("FEED", CHANNELS, config)
    latest: dict[str, Any] = {}
    for row in rows:
        for clue in monitor.observe(Sample("IMDELD", row.time, dict(row.kw))):
            latest[clue.clue_id] = clue
    return list(latest.values())


def producing(row: Row) -> bool:
    return any(row.kw[f"ap{i}"] > 5 for i in range(5, 9))


def inject(rows: list[Row], rng: random.Random, count: int
           ) -> tuple[list[Row], list[tuple[datetime, datetime, int]]]:
    """A copy with up to ``count`` non-overlapping fan-off windows; (start, end, samples)."""
    out = [Row(r.time, dict(r.kw)) for r in rows]
    taken: list[tuple[datetime, datetime]] = []
    windows: list[tuple[datetime, datetime, int]] = []
    for _ in range(count * 20):
        if len(windows) == count:
            break
        i = rng.randrange(len(out))
        start = out[i].time
        end = start + timedelta(minutes=rng.choice(DURATIONS_MIN))
        inside = [r for r in out if start <= r.time < end]
        clear = [r for r in out if start - timedelta(hours=1) <= r.time < end + timedelta(
            hours=1)]
        if not inside or not all(producing(r) for r in inside) or any(
                r.kw[f] < 0.5 for r in clear for f in FANS):
            continue
        if any(start < b + timedelta(hours=2) and a < end + timedelta(hours=2)
               for a, b in taken):
            continue
        for r in inside:
            for f in FANS:
                r.kw[f] = rng.uniform(0.0, 0.3)
        taken.append((start, end))
        windows.append((inside[0].time, inside[-1].time, len(inside)))
    return out, windows


def overlaps(clue: Any, start: datetime, end: datetime) -> bool:
    last = clue.end or clue.time
    return clue.start <= end and start <= last


def main(seeds: int = 20, per_seed: int = 8) -> dict[str, Any]:
    config = PowerConfig()
    figures: dict[str, Any] = {}
    found = visible = missed_visible = total = false = true_clues = 0
    by_duration: Counter[int] = Counter()
    by_duration_found: Counter[int] = Counter()
    for name in FILES:
        rows = load(name)
        base = clues_of(rows, config)
        days = (rows[-1].time - rows[0].time).total_seconds() / 86400
        figures[f"{name}: samples, days with data"] = (len(rows), round(days, 1))
        figures[f"{name}: real clues by kind"] = dict(Counter(c.kind for c in base))
        figures[f"{name}: real treatment_off episodes (start, minutes)"] = [
            (c.start.isoformat(timespec="minutes"),
             round(((c.end or c.time) - c.start).total_seconds() / 60))
            for c in base if c.kind == "treatment_off"][:20]
        base_ids = {c.clue_id for c in base}
        for seed in range(seeds):
            rng = random.Random(seed)
            series, windows = inject(rows, rng, per_seed)
            clues = [c for c in clues_of(series, config) if c.kind == "treatment_off"]
            for start, end, n in windows:
                total += 1
                minutes = round((end - start).total_seconds() / 60)
                shown = n >= 2 and (end - start).total_seconds() >= config.min_episode_s
                hit = any(overlaps(c, start, end) for c in clues)
                found += hit
                visible += shown
                missed_visible += shown and not hit
                bucket = min(d for d in DURATIONS_MIN if d >= minutes) if minutes <= 240 \
                    else 240
                by_duration[bucket] += shown
                by_duration_found[bucket] += shown and hit
            for clue in clues:
                if any(overlaps(clue, s, e) for s, e, _ in windows):
                    true_clues += 1
                elif clue.clue_id not in base_ids:
                    false += 1
    figures["injected episodes"] = total
    figures["injected episodes the data can show"] = visible
    figures["recall on those"] = round(1 - missed_visible / visible, 3) if visible else None
    figures["recall on all injected"] = round(found / total, 3) if total else None
    figures["precision (clues not on an injection nor on the real series' own episodes)"] = (
        round(true_clues / (true_clues + false), 3) if true_clues + false else None)
    figures["recall by span of the injected samples, min (showable only)"] = {
        d: round(by_duration_found[d] / by_duration[d], 3) for d in DURATIONS_MIN
        if by_duration[d]}
    return figures
