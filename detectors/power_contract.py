"""The command-line contract of ``offsite power analyze`` (issue 18).

Input: the env JSON lines (``detectors.env_contract``): ``{"station", "time", "code",
"value"}`` where the station is a meter id, the code a channel and the value kW. Lines may
come in any order across meters (each meter's own lines in time order); the samples of all
meters of one entity are judged together in time order. The channels and shutdowns come
parsed (the CLI reads ``power_channels.csv`` and ``shutdowns.csv`` with the registry
folder's parser, so the files are checked exactly as an import checks them).

Output: one JSON object per clue (the latest state of each episode) with the env
contract's keys plus ``entity`` and ``channel``: ``station`` is the meter, ``code`` and
``channel`` the channel (null for entity-level rules: a shutdown, a whole meter offline),
``value`` the judged side's mean kW over the episode (the treatment channel's, or the
production's for a shutdown), ``limit`` the threshold used, ``standard`` null.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from contract.clue import Clue
from detectors.env_contract import read_jsonl
from detectors.power import Channel, EntityMonitor, OnPlot, PowerConfig, Sample, Shutdown

CONTRACT_KEYS = ("kind", "station", "code", "start", "end", "standard", "limit", "value",
                 "detail", "entity", "channel")


def shutdowns_for(entity: str, zones: Iterable[str], shutdowns: Sequence[Shutdown]
                  ) -> list[Shutdown]:
    """The declared shutdowns whose scope is the entity or one of its zones."""
    scopes = {entity, *zones}
    return sorted((s for s in shutdowns if s.scope in scopes), key=lambda s: s.start)


def analyze_jsonl(lines: Iterable[str], channels: Sequence[Channel],
                  shutdowns: Sequence[Shutdown] = (), config: PowerConfig | None = None,
                  entity_zones: dict[str, list[str]] | None = None,
                  on_plot: OnPlot | None = None) -> list[Clue]:
    """Every clue event of a readings file; readings of meters no channel names are skipped."""
    entity_of = {c.meter: c.entity for c in channels}
    samples: dict[str, list[Sample]] = defaultdict(list)
    for _, reading in read_jsonl(lines):
        entity = entity_of.get(reading.station)
        if entity is None or reading.event:
            continue
        samples[entity].append(Sample(reading.station, reading.time, dict(reading.values)))
    out: list[Clue] = []
    for entity, items in samples.items():
        monitor = EntityMonitor(entity, channels, config, on_plot=on_plot)
        monitor.shutdowns = shutdowns_for(entity, (entity_zones or {}).get(entity, []),
                                          shutdowns)
        for sample in sorted(items, key=lambda s: s.time):  # stable: meters interleave
            out += monitor.observe(sample)
        out += monitor.flush()
    return out


def to_contract(clue: Clue) -> dict[str, Any]:
    """One output object for one clue (its latest state)."""
    m = clue.metrics
    end = clue.end or clue.time
    return {
        "kind": clue.kind,
        "station": m.get("meter"),
        "code": m.get("channel"),
        "start": clue.start.isoformat(),
        "end": end.isoformat(),
        "standard": None,
        "limit": m.get("limit"),
        "value": m.get("value", m.get("gap_s")),
        "detail": {"rule": clue.rule, "state": clue.state, "summary": clue.summary,
                   "confidence": clue.confidence,
                   "metrics": {k: v for k, v in m.items()
                               if k not in ("entity", "meter", "channel")}},
        "entity": clue.subject,
        "channel": m.get("channel"),
    }


def latest_per_episode(clues: Iterable[Clue]) -> list[Clue]:
    """The last event of each episode (clue id), in order of first appearance."""
    latest: dict[str, Clue] = {}
    for clue in clues:
        latest[clue.clue_id] = clue
    return list(latest.values())
