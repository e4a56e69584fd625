"""The fire agent: real FIRMS rows of one cell to routed fire clues, once, with history.

MODIS Collection 6.1 NRT Hotspot / Active Fire Detections MCD14DL, NASA FIRMS,
doi:10.5067/FIRMS/MODIS/MCD14DL.NRT.0061 (in ``samples/satellite/firms``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from contract.records import FireBatch
from detectors.fire_firms import parse_firms
from geo.routing import Router, load_rules
from geo.zones import ZoneIndex, geohash
from storage.sinks import RejectedSink
from streams.fire import FireAgent
from tests.streams.conftest import Build

ROOT = Path(__file__).resolve().parents[2]
FIRMS = ROOT / "samples" / "satellite" / "firms" / \
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
    # no detections and no time: nothing to say, refused and kept; with the time, it flows
    empty = {"source": "poll", "sha256": "c" * 64, "cell": "wwe", "detections": []}
    assert decode_or_reject(SAT_FIRES, json.dumps(empty).encode(), dead) is None
    assert len(dead) == 2 and "observed_until" in dead.rows[1][3]
    timed = {**empty, "observed_until": "2022-06-01T00:00:00+00:00"}
    assert decode_or_reject(SAT_FIRES, json.dumps(timed).encode(), dead) is not None
    assert len(dead) == 2


def test_fire_takes_a_nearby_cameras_site_and_fuses_with_its_clue(build: Build) -> None:
    from datetime import timedelta

    from contract.clue import Clue
    from streams.clues import fuse

    d = parse_firms(FIRMS.read_bytes()).detections[0]
    cam_lon = d.lon + 1.5 / (111.32 * 0.8)  # about 1.5 km east (cos 37° = 0.8)
    far_lon = d.lon + 10 / (111.32 * 0.8)
    streams, topic = build("streams.fire")
    agent: FireAgent = streams.agents["streams.fire"]
    agent.sensors = [("camera", "FAR-CAM", far_lon, d.lat), ("camera", "CAM-X", cam_lon, d.lat)]
    batch = FireBatch(source="modis.csv", sha256="b" * 64, cell=geohash(d.lon, d.lat, 3),
                      detections=[d])
    assert asyncio.run(agent.handle(batch, 0)) == 1
    key, fire = topic.sent[0]
    camera_point = {"type": "Point", "coordinates": [cam_lon, d.lat]}
    cam_site = streams.router.route(camera_point, modality="video", kind="motion").site
    assert key == fire.route["site"] == cam_site
    assert fire.route["near"]["id"] == "CAM-X" and 1.2 < fire.route["near"]["km"] < 1.8
    smoke = Clue(modality="video", kind="motion", rule="zone/field/motion", subject="CAM-X",
                 start=d.time - timedelta(minutes=20), time=d.time, confidence=0.5,
                 location=camera_point)
    case, _ = fuse(None, fire, cam_site)
    case, _ = fuse(case, smoke, cam_site)
    assert len(case["clues"]) == 2
    assert case["confidence"] > max(fire.confidence, smoke.confidence)
    # no sensor near: the event's own site
    agent.sensors = [("camera", "FAR-CAM", far_lon, d.lat)]
    later = d.model_copy(update={"time": d.time + timedelta(days=2)})
    asyncio.run(agent.handle(batch.model_copy(update={"detections": [later]}), 0))
    (alone,) = [c for _, c in topic.sent if c.start == later.time]
    # the data two days on: the first fire there has ended; its clue is sent closed
    (ended,) = [c for _, c in topic.sent if c.state == "closed"]
    assert ended.clue_id == fire.clue_id and ended.end == d.time
    assert "near" not in alone.route
    assert alone.route["site"] == streams.router.route(alone.location, modality="satellite",
                                                       kind="open_fire").site
