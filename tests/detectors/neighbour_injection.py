"""Injections into the real Beijing winter for the neighbour-rule tests: spans where the
city is under haze, a station's channels scaled down in them, and the interference clues
that cover a span (``test_env_witness``, ``test_env_alike``)."""

from __future__ import annotations

from collections.abc import Collection
from statistics import median

from bench.bench_env_neighbours import hour_index
from contract.records import Reading
from detectors.env_neighbours import PM25, NeighbourMap
from detectors.env_region import judge_series

H = 3600.0


def interference(per: dict[str, list[Reading]], nmap: NeighbourMap, sid: str, t0: float,
                 t1: float) -> list:
    """The interference clues of ``sid`` whose episode overlaps [t0, t1)."""
    return [c for c in judge_series(per, nmap, subjects=[sid])
            if c.kind == "interference" and c.start.timestamp() < t1
            and t0 < (c.end or c.time).timestamp() + H]


def scaled(per: dict[str, list[Reading]], sid: str, t0: float, hours: int,
           codes: tuple[str, ...], digits: int) -> dict[str, list[Reading]]:
    """The record with ``sid``'s ``codes`` at 40 % for ``hours`` from ``t0``."""
    span = {t0 + k * H for k in range(hours)}
    rows = [r.model_copy(update={"values": {c: round(v * 0.4, digits) if c in codes else v
                                            for c, v in r.values.items()}})
            if r.time.timestamp() in span else r for r in per[sid]]
    return {**per, sid: rows}


def haze_spans(per: dict[str, list[Reading]], nmap: NeighbourMap, sid: str, hours: int,
               channels: Collection[str], avoid: tuple[float, float] | None = None
               ) -> list[float]:
    """Starts of ``hours``-hour spans, 5 days apart, after 3 weeks of history (what the
    station's usual relations are learnt from), where the neighbours' PM2.5 median is over
    75 µg/m³ and ``sid`` reported ``channels`` throughout; none within 2 days of ``avoid``."""
    idx = hour_index(per)
    ts = sorted(idx)
    out: list[float] = []
    t = ts[0] + 21 * 86400
    while t < ts[-1] - hours * H:
        span = [t + k * H for k in range(hours)]
        ok = all(sid in idx.get(s, {}) and set(channels) <= set(idx[s][sid].values)
                 and median([idx[s][n].values[PM25] for n in nmap.of(sid)
                             if n in idx[s] and PM25 in idx[s][n].values] or [0]) >= 75
                 for s in span) and not (avoid is not None
                                         and span[0] < avoid[1] + 2 * 86400
                                         and avoid[0] - 2 * 86400 < span[-1])
        t += 5 * 86400 if ok else H
        if ok:
            out.append(span[0])
    return out
