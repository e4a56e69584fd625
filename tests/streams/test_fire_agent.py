"""The fire agent: real FIRMS rows of one cell to routed fire clues, once, with history.

MODIS Collection 6.1 NRT Hotspot / Active Fire Detections MCD14DL, NASA FIRMS,
doi:10.5067/FIRMS/MODIS/MCD14DL.NRT.0061 (read by path from ``../shared/data``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from contract.records import FireBatch
from detectors.fire_firms import parse_firms
from geo.routing import Router, load_rules
from geo.zones import ZoneIndex, geohash
from storage.sinks import RejectedSink
from streams.fire import FireAgent
from tests.streams.conftest import Build

ROOT = Path(__file__).resolve().parents[2]
FIRMS = ROOT.parent / "shared" / "data" / "satellite" / "firms" / \
    "modis_2022-05-28_06-04_shandong_box.csv"
RULES = ROOT / "samples" / "registry" / "routing.csv"


def square(lon: float, lat: float, half: float, **props: object) -> dict:
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half],
            [lon - half, lat + half], [lon - half, lat - half]]
    return {"type": "Feature", "properties": props,
            "geometry": {"type": "Polygon", "coordinates": [ring]}}


def test_cell_batch_becomes_routed_fire_clues_once(build: Build) -> None:
    dets = parse_firms(FIRMS.read_bytes()).detections
    cell = geohash(dets[0].lon, dets[0].lat, 3)
    mine = [d for d in dets if geohash(d.lon, d.lat, 3) == cell][:12]
    a, b = mine[0], mine[-1]
    zones = ZoneIndex.from_geojson({"type": "FeatureCollection", "features": [
        square(a.lon, a.lat, 0.5, id="cn-370000", kind="jurisdiction", county="370000",
               name="demo county", level=3),
        square(a.lon, a.lat, 0.01, id="pf-a", kind="protected_farmland", county="370000"),
        square(b.lon, b.lat, 0.003, id="steel-b", kind="enterprise_site", county="370000",
               heat_source=True),
    ]})
    streams, topic = build("streams.fire")
    streams.set_router(Router(zones, load_rules(RULES)))
    agent: FireAgent = streams.agents["streams.fire"]
    batch = FireBatch(source="modis.csv", sha256="a" * 64, cell=cell, detections=mine)

    async def run() -> list[int]:
        return [await agent.handle(batch, 0), await agent.handle(batch, 0)]

    sent = asyncio.run(run())
    assert sent[0] == len(topic.sent) and sent[1] == 0  # the same batch again: nothing
    clues = [c for _, c in topic.sent]
    straw = [c for c in clues if c.kind == "straw_burning"]
    assert len(straw) == 1 and straw[0].route["site"] == "pf-a"
    assert straw[0].route["department"] == "370000-ecology-environment"
    assert all(c.modality == "satellite" and c.kind in {"straw_burning", "open_fire"}
               for c in clues)
    assert not any("steel-b" in c.metrics["zones"] for c in clues)  # heat source: masked
    assert all(key == c.route["site"] for key, c in topic.sent)
    assert agent.cells.data[cell]["history"]


def test_invalid_record_is_a_dead_letter() -> None:
    from contract.topics import SAT_FIRES
    from streams.sinks import decode_or_reject

    dead = RejectedSink()
    assert decode_or_reject(SAT_FIRES, b'{"source": "x", "cell": "", "detections": []}',
                            dead) is None
    assert len(dead) == 1 and "FireBatch" in dead.rows[0][3]
