"""Neighbour rules on the 12 real Beijing stations (issue 15, point 4).

Run: ``offsite bench env-neighbours [--quick]`` or
``.venv/bin/python -m bench.bench_env_neighbours [--quick] [SEED [SEEDS]]`` (SEEDS
injection runs from SEED on, pooled); ``--sweep [PARAM]``: the parameter sweep on the real
record (the rows that name PARAM only, when given); ``--co``: how much of each station's
PM residual variance its CO residual explains (``co_explained``).

1. Real years alone (2013-03 to 2015-02, PM2.5 and PM10 of all 12 stations with CO as the
   interference rule's witness, as ``env analyze --stations`` runs them): neighbour-type
   (interference, local_source) and spike clues per station-year (the lone-station rules
   on PM only); replay clues per station-year on every channel.
2. Injection into the real series at seeded random stations and times, one event per
   5-day slot (so no two overlap): interference, both PM channels scaled to 5-50 % of
   their value for 6 h to 4 days while the neighbours' PM2.5 median is over 75 µg/m³;
   local sources, PM10 + A and PM2.5 + A/2 (A 80-600 µg/m³) for 6 to 24 h while the
   neighbours' PM2.5 median is under 35 µg/m³. A clue of the doctored run that the clean run
   does not have is a detection; it is true when its kind and station match an injected
   event whose interval it overlaps. Recall per kind, by magnitude and by duration.
"""

from __future__ import annotations

import glob
import json
import random
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from contract.records import Reading
from detectors.env import StationMonitor, final_clues
from detectors.env_config import EnvConfig, StationInfo
from detectors.env_contract import to_contract
from detectors.env_episodes import witness_fit
from detectors.env_io import read_beijing
from detectors.env_neighbours import CO, PM10, PM25, NeighbourConfig, NeighbourMap, consensus
from detectors.env_region import defer_spikes, judge_series, read_sites

# the whole two years (CC BY 4.0; too large for samples/, which keeps the winter the tests use)
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sensors" / "beijing_12"
SLOT_H = 5 * 24
H = 3600.0


def load(codes: tuple[str, ...] | None = (PM25, PM10, CO),
         until: datetime | None = None, data: Path = DATA) -> dict[str, list[Reading]]:
    """The 12 stations' readings by station id (``codes`` only; None: every channel)."""
    ids = {s.id.split("-", 1)[1].lower(): s.id for s in read_sites(data / "stations.csv")}
    out: dict[str, list[Reading]] = {}
    for path in sorted(glob.glob(str(data / "PRSA_Data_*.csv"))):
        sid = ids[Path(path).name.split("_")[2].lower()]
        rows = []
        for r in read_beijing(path, sid):
            if until is not None and r.time >= until.replace(tzinfo=r.time.tzinfo):
                break
            values = {c: v for c, v in r.values.items() if codes is None or c in codes}
            if values:
                rows.append(r.model_copy(update={"values": values}))
        out[sid] = rows
    return out


def station_years(per: dict[str, list[Reading]]) -> float:
    return sum((rs[-1].time - rs[0].time).total_seconds() / (365.25 * 86400)
               for rs in per.values() if rs)


def per_station_clues(per: dict[str, list[Reading]], nmap: NeighbourMap) -> list[Any]:
    cfg = EnvConfig(evidence=False)
    out = []
    for sid, rs in per.items():
        mon = StationMonitor(StationInfo(id=sid), cfg)
        out += mon.observe_many(rs) + mon.flush()
    return final_clues(defer_spikes(out, nmap))


def hour_index(per: dict[str, list[Reading]]) -> dict[float, dict[str, Reading]]:
    idx: dict[float, dict[str, Reading]] = defaultdict(dict)
    for sid, rs in per.items():
        for r in rs:
            idx[r.time.timestamp()][sid] = r
    return idx


def inject(per: dict[str, list[Reading]], nmap: NeighbourMap, rng: random.Random
           ) -> tuple[dict[str, list[Reading]], list[dict[str, Any]]]:
    """The doctored series and the injected events (see the module doc)."""
    idx = hour_index(per)
    hours = sorted(idx)
    events: list[dict[str, Any]] = []
    doctored = {sid: {r.time.timestamp(): r for r in rs} for sid, rs in per.items()}
    for slot, start in enumerate(range(0, len(hours) - SLOT_H, SLOT_H)):
        kind = "interference" if slot % 2 == 0 else "local_source"
        dur = rng.choice([6, 12, 24, 48, 96]) if kind == "interference" \
            else rng.choice([6, 8, 12, 24])
        for _ in range(200):  # a station and start where the condition holds
            sid = rng.choice(sorted(per))
            t0 = hours[start + rng.randrange(SLOT_H - dur)]
            span = [t0 + k * H for k in range(dur)]
            meds = []
            for t in span:
                nb = [idx[t][n].values.get(PM25) for n in nmap.of(sid) if n in idx.get(t, {})]
                nb = [v for v in nb if v is not None]
                if len(nb) < 3 or t not in doctored[sid]:
                    break
                meds.append(median(nb))
            else:
                high = sum(m >= 75 for m in meds) >= 0.8 * dur
                clean = all(m <= 35 for m in meds)
                if (kind == "interference" and high) or (kind == "local_source" and clean):
                    break
        else:
            continue
        mag = rng.uniform(0.05, 0.5) if kind == "interference" else rng.uniform(80, 600)
        for t in span:
            r = doctored[sid][t]
            vals = dict(r.values)
            for code in (PM25, PM10):
                if code in vals:
                    vals[code] = round(vals[code] * mag if kind == "interference"
                                       else vals[code] + mag * (0.5 if code == PM25 else 1), 1)
            doctored[sid][t] = r.model_copy(update={"values": vals})
        events.append({"kind": kind, "station": sid, "t0": span[0], "t1": span[-1] + H,
                       "hours": dur, "magnitude": round(mag, 2)})
    return {sid: [m[t] for t in sorted(m)] for sid, m in doctored.items()}, events


def score(clean: list[Any], doctored: list[Any], events: list[dict[str, Any]]
          ) -> dict[str, Any]:
    """Per kind: each injected event with whether a new clue found it, and the new clues'
    count and how many of them are true (``summarise`` turns seeds of these into figures)."""
    def span(c: Any) -> tuple[float, float]:
        return c.start.timestamp(), (c.end or c.time).timestamp() + H

    def same(a: Any, b: Any) -> bool:
        (s1, e1), (s2, e2) = span(a), span(b)
        return a.kind == b.kind and a.subject == b.subject and a.rule == b.rule \
            and s1 <= e2 and s2 <= e1

    def finds(c: Any, ev: dict[str, Any]) -> bool:
        s, e = span(c)
        return ev["kind"] == c.kind and ev["station"] == c.subject and s < ev["t1"] \
            and ev["t0"] < e

    new = [c for c in doctored if c.kind in ("interference", "local_source")
           and not any(same(c, b) for b in clean)]
    out: dict[str, Any] = {}
    for kind in ("interference", "local_source"):
        made = [c for c in new if c.kind == kind]
        out[kind] = {"events": [dict(ev, hit=any(finds(c, ev) for c in made))
                                for ev in events if ev["kind"] == kind],
                     "clues": len(made),
                     "true": sum(any(finds(c, ev) for ev in events) for c in made)}
    return out


def _bucket(kind: str, m: float) -> str:
    if kind == "interference":
        lo = int(m * 10) / 10
        return f"scale {lo:.1f}-{lo + 0.1:.1f}"
    lo = int(m // 100) * 100
    return f"+{lo}-{lo + 99}"


def summarise(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """Recall, precision and recall by magnitude and by duration over seeds."""
    out: dict[str, Any] = {}
    for kind in ("interference", "local_source"):
        events = [ev for sc in scores for ev in sc[kind]["events"]]
        clues = sum(sc[kind]["clues"] for sc in scores)
        true = sum(sc[kind]["true"] for sc in scores)
        by_mag: dict[str, list[bool]] = defaultdict(list)
        by_dur: dict[int, list[bool]] = defaultdict(list)
        for ev in events:
            by_mag[_bucket(kind, ev["magnitude"])].append(ev["hit"])
            by_dur[ev["hours"]].append(ev["hit"])
        out[kind] = {
            "injected": len(events),
            "recall": round(sum(ev["hit"] for ev in events) / max(len(events), 1), 3),
            "precision": round(true / max(clues, 1), 3), "clues": clues,
            "recall_by_magnitude": {b: f"{sum(v)}/{len(v)}" for b, v in sorted(by_mag.items())},
            "recall_by_hours": {h: f"{sum(v)}/{len(v)}" for h, v in sorted(by_dur.items())},
            "missed": [{k: v for k, v in ev.items() if k not in ("t0", "t1", "hit")}
                       for ev in events if not ev["hit"]][:8]}
    return out


def co_explained(per: dict[str, list[Reading]], nmap: NeighbourMap) -> dict[str, Any]:
    """Per station and PM code, on the real record alone: how much of the PM residual (log,
    station vs its neighbours' median) the CO residual explains, fitted as the tracker does
    (``witness_fit``) on 30-day windows: the median over windows of the robust R²,
    ``1 - (spread of what CO leaves / spread of the PM residual)²``, of the two spreads and
    of the slope ``b``."""
    cfg = nmap.cfg
    idx = hour_index(per)
    out: dict[str, Any] = {}
    for sid in sorted(per):
        for code in (PM25, PM10):
            rows = []
            for t in sorted(idx):
                hr = idx[t]
                if sid not in hr or code not in hr[sid].values or CO not in hr[sid].values:
                    continue
                pm = consensus(cfg, hr[sid].values[code], {n: hr[n].values[code]
                               for n in nmap.of(sid) if n in hr and code in hr[n].values})
                co = consensus(cfg, hr[sid].values[CO], {n: hr[n].values[CO]
                               for n in nmap.of(sid) if n in hr and CO in hr[n].values},
                               cfg.covariate_offset)
                if pm is not None and co is not None:
                    rows.append((t, pm.residual, co.residual))
            arr = np.asarray(rows, float)
            stats = []
            for w0 in range(0, len(arr) - cfg.history_h + 1, cfg.history_h):
                win = arr[w0:w0 + cfg.history_h, 1:]
                a, b, mad_u = witness_fit(win)
                mad_pm = 1.4826 * float(np.median(np.abs(win[:, 0] - np.median(win[:, 0]))))
                stats.append((1 - (mad_u / mad_pm) ** 2, mad_pm, mad_u, b))
            med = np.median(np.asarray(stats), axis=0)
            out[f"{sid}/{code}"] = {"r2": round(float(med[0]), 2),
                                    "pm_spread": round(float(med[1]), 3),
                                    "unexplained_spread": round(float(med[2]), 3),
                                    "b": round(float(med[3]), 2), "windows": len(stats)}
    return out


def neighbour_clues(per: dict[str, list[Reading]], nmap: NeighbourMap) -> Counter[str]:
    return Counter(c.kind for c in final_clues(judge_series(per, nmap)))


#: the sweep of the episode parameters, judged on the real record alone (false alarms)
SWEEP: list[dict[str, Any]] = [
    {"cusum_k": k, "cusum_h": h} for k in (1.0, 1.5, 2.0) for h in (15.0, 20.0, 25.0, 30.0)
] + [{"cusum_h": h} for h in (22.0, 23.0, 24.0)] + [
    {"lag_h": 0}, {"lag_h": 6}, {"channel_correlation": 1.0}, {"cusum_clip": 12.0},
    {"high_per_episode": False, "difference_per_episode": False}] + [
    {"cusum_h_witness": h} for h in (13.0, 15.0, 16.0, 19.0, 25.0)] + [
    {"covariates": ()}] + [
    # the blocked-inlet checks one by one (``lag_needs_witness`` False: the lag as before)
    {"ratio_z": None, "witness_z": None, "lag_needs_witness": False, "cusum_h_witness": h}
    for h in (15.0, 19.0)] + [
    {"witness_z": None, "lag_needs_witness": False, "cusum_h_witness": h}
    for h in (11.0, 12.0, 13.0, 15.0, 17.0, 19.0)] + [
    {"lag_needs_witness": False, "cusum_h_witness": h}
    for h in (10.0, 11.0, 12.0, 14.0, 15.0, 16.0, 19.0)] + [
    {"lag_needs_witness": False, "cusum_k": 2.0, "cusum_h_witness": h}
    for h in (8.0, 10.0, 12.0)]


def sweep(quick: bool = False, only: str | None = None) -> dict[str, Any]:
    """Neighbour clues per station-year on the real record for each setting of ``SWEEP``
    (the defaults otherwise; ``only``: the rows that name that parameter), and the average
    run length between false episodes in station-hours (``channel_correlation`` 1.0 is the
    channels' mean not scaled up: as if they were one)."""
    until = datetime(2013, 7, 1) if quick else None
    sites = read_sites(DATA / "stations.csv")
    per = load(until=until)
    years = station_years(per)
    rows = []
    for over in SWEEP:
        if only is not None and only not in over:
            continue
        nmap = NeighbourMap(sites, NeighbourConfig(**over))
        kinds = neighbour_clues(per, nmap)
        n = kinds["interference"] + kinds["local_source"]
        rows.append({**over, "interference": kinds["interference"],
                     "local_source": kinds["local_source"],
                     "per_station_year": round(n / years, 2),
                     "arl_station_hours": round(years * 8766 / max(n, 1))})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {"benchmark": "env-neighbours-sweep", "quick": quick,
            "station_years": round(years, 2), "rows": rows}


def main(quick: bool = False, seed: int = 15, seeds: int = 1) -> dict[str, Any]:
    t = time.perf_counter()
    until = datetime(2013, 7, 1) if quick else None
    sites = read_sites(DATA / "stations.csv")
    nmap = NeighbourMap(sites)
    per = load(until=until)
    years = station_years(per)
    # the single-station rules on PM only, as before CO came in as the neighbours' witness
    pm_only = {sid: [r.model_copy(update={"values": {c: v for c, v in r.values.items()
                                                     if c in (PM25, PM10)}})
                     for r in rs if PM25 in r.values or PM10 in r.values]
               for sid, rs in per.items()}
    clean = per_station_clues(pm_only, nmap) + final_clues(judge_series(per, nmap))
    kinds = Counter(to_contract(c)["kind"] for c in clean)
    figures: dict[str, Any] = {
        "benchmark": "env-neighbours", "quick": quick, "station_years": round(years, 2),
        "real_clues_pm": dict(kinds),
        "neighbour_and_spike_per_station_year": round(
            sum(kinds[k] for k in ("interference", "local_source", "spike")) / years, 2),
        "goal_per_station_year": 2}
    everything = load(codes=None, until=until)
    replays = sum(1 for c in per_station_clues(everything, nmap) if c.kind == "replay")
    figures["replay_per_station_year"] = round(replays / years, 2)
    scores = []
    for s in range(seed, seed + seeds):
        doctored, events = inject(per, nmap, random.Random(s))
        scores.append(score(clean, final_clues(judge_series(doctored, nmap)), events))
    figures["seeds"] = list(range(seed, seed + seeds))
    figures["co_explained"] = co_explained(per, nmap)
    figures["injection"] = summarise(scores)
    figures["seconds"] = round(time.perf_counter() - t, 1)
    return figures


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "--sweep" in sys.argv:
        print(json.dumps(sweep("--quick" in sys.argv, args[0] if args else None), indent=1))
    elif "--co" in sys.argv:
        print(json.dumps(co_explained(load(), NeighbourMap(read_sites(DATA / "stations.csv"))),
                         indent=1))
    else:
        print(json.dumps(main("--quick" in sys.argv, int(args[0]) if args else 15,
                              int(args[1]) if len(args) > 1 else 1), indent=1))
