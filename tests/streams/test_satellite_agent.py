"""The satellite agent keeps a tile it cannot look at as a dead letter and goes on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from contract.records import Tile
from storage.sinks import RejectedSink
from streams.satellite import SatelliteAgent
from tests.streams.conftest import Build


def tile(uri: str, baseline: str) -> Tile:
    return Tile(tile_id="T1", scene_id="S2", time=datetime(2024, 5, 1, tzinfo=UTC), uri=uri,
                window=(0, 0, 64, 64), baseline_scene_id="S1", baseline_uri=baseline,
                baseline_time=datetime(2024, 4, 1, tzinfo=UTC))


def test_a_tile_naming_a_url_or_a_missing_file_becomes_a_dead_letter(build: Build,
                                                                      tmp_path: object) -> None:
    streams, topic = build("streams.satellite")
    agent: SatelliteAgent = streams.agents["streams.satellite"]
    dead = RejectedSink()
    bad = [tile("/vsicurl?url=http://127.0.0.1:9/x.tif", "/tmp/none.tif"),
           tile(f"{tmp_path}/missing.tif", f"{tmp_path}/missing-too.tif")]

    async def run() -> list[int]:
        return [await agent.handle(t, 0, t.dumps(), dead) for t in bad]

    assert asyncio.run(run()) == [0, 0] and topic.sent == []
    assert len(dead) == 2  # kept with the record's bytes and the reason, nothing raised
    reasons = [row[3] for row in dead.rows]
    assert all(r.startswith("detection failed:") for r in reasons), reasons
    assert "virtual" in reasons[0] or "URL" in reasons[0] or "vsi" in reasons[0], reasons[0]
    assert [row[4] for row in dead.rows] == [t.dumps() for t in bad]
    assert "T1" not in agent.tiles.data  # nothing judged: a later good acquisition still counts
