"""Scene ingest: GeoTIFF/COG files and STAC Items in an inbox to ``sat.scenes`` + ``sat.tiles``.

Why: an inbox folder is how scenes arrive off-line (downloaded by another tool, copied
from a USB disk). Each new file becomes a :class:`Scene` (id, sensor, acquisition time,
CRS, WGS84 footprint, band roles, QA band) and is split into windows that are whole
multiples of the file's blocks (:class:`Tile`), keyed by a tile id derived from the grid
(CRS, window origin in map units, size), so acquisitions of one place on one grid share
tile ids and the stream can confirm changes across them. A tile's baseline is the latest
*earlier* scene whose footprint covers the tile.

State lives in ``<state_dir>/satellite/``: ``scenes.json`` (the index of scenes seen, for
baselines) and ``processed.json`` (file path -> size and mtime, so a restart does not
re-send files; re-sending would be harmless anyway: scene and tile ids are stable and the
stream ignores an acquisition not later than the last one of its tile).

FIRMS active-fire CSVs (``*.csv``) arrive in the same inbox and go to ``sat.fires``
(``ingest.firms``). A file is taken once it has not changed for ``settle_s`` (a file still
being copied is left for the next scan). STAC Items (``*.json``) need local asset hrefs;
single-band assets of one grid are stacked into one GeoTIFF under the state folder.

Files stay inside the inbox (``detectors.raster_guard``): hrefs with ``..``, absolute paths,
URLs and GDAL virtual file systems are refused unless they start with a prefix of
``allowed_prefixes``; a symlink out of the inbox is refused; rasters are opened as GeoTIFF
only (a VRT saved as ``.tif`` is refused by content) with GDAL's HTTP access off; a scene over
``max_pixels`` is refused. Every refusal goes to the dead-letter store with the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rasterio.warp import transform_bounds
from shapely.geometry import box, mapping, shape

from contract.records import Scene, Tile
from contract.topics import SAT_SCENES, SAT_TILES
from detectors.raster_guard import RasterRefused, inbox_path, open_raster
from detectors.satellite import normalise_role, roles_from_descriptions
from detectors.satellite_meta import parse_date_text, scene_date, sensor_from_name
from ingest.firms import ingest_firms_file, is_firms_file

log = logging.getLogger(__name__)
RASTER_SUFFIXES = (".tif", ".tiff")


@dataclass
class InboxOptions:
    tile_px: int = 1024  # target tile side; rounded to whole blocks
    settle_s: float = 1.0
    scan_s: float = 2.0
    max_pixels: int = 20000 * 20000  # settings.satellite_max_pixels
    allowed_prefixes: tuple[str, ...] = ()  # settings.satellite_allowed_prefixes


def scene_from_raster(path: Path, *, scene_id: str | None = None, sensor: str | None = None,
                      when: datetime | None = None,
                      bands: dict[str, int] | None = None,
                      options: InboxOptions | None = None) -> Scene:
    """A Scene record from a GeoTIFF/COG (band roles from descriptions unless given)."""
    opts = options or InboxOptions()
    with open_raster(path, opts.allowed_prefixes) as ds:
        if ds.width * ds.height > opts.max_pixels:
            raise RasterRefused(f"{path.name}: {ds.width}x{ds.height} is over the "
                                f"{opts.max_pixels} pixels a scene may have")
        if ds.crs is None:
            raise ValueError(f"{path.name}: no CRS")
        roles = dict(bands) if bands else roles_from_descriptions(ds.descriptions)
        if when is None:
            found = scene_date(path, ds)
            if found is None:
                raise ValueError(f"{path.name}: no acquisition date in tags or file name")
            when = found.time
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        qa = roles.pop("qa", None)
        return Scene(scene_id=scene_id or path.stem, time=when, crs=ds.crs.to_string(),
                     sensor=sensor or sensor_from_name(path.name, ds.tags()),
                     footprint=mapping(box(west, south, east, north)), uri=str(path.resolve()),
                     bands=roles, qa_band=qa, width=ds.width, height=ds.height)


def scene_from_stac(path: Path, work_dir: Path, options: InboxOptions | None = None) -> Scene:
    """A Scene from a STAC Item with local assets (one multi-band asset, or one per band);
    every href is checked (``detectors.raster_guard.inbox_path``) before anything opens it."""
    from detectors.satellite_files import stack_bands

    opts = options or InboxOptions()
    item = json.loads(path.read_text())
    if not isinstance(item, dict) or item.get("type") != "Feature" \
            or not isinstance(item.get("assets"), dict):
        raise ValueError(f"{path.name}: not a STAC Item")
    props = item.get("properties") or {}
    if not isinstance(props, dict):
        raise ValueError(f"{path.name}: STAC properties are not an object")
    got = parse_date_text(str(props.get("datetime") or props.get("start_datetime") or ""))
    if got is None:
        raise ValueError(f"{path.name}: STAC Item without datetime")
    singles: dict[str, Path] = {}
    multi: tuple[Path, dict[str, int]] | None = None
    for key, asset in item["assets"].items():
        if not isinstance(asset, dict) or not isinstance(asset.get("href", ""), str):
            raise ValueError(f"{path.name}: asset {str(key)[:80]!r} is not a STAC asset")
        href = asset.get("href", "")
        try:
            local = Path(inbox_path(href, path.parent, opts.allowed_prefixes))
        except RasterRefused as exc:
            raise RasterRefused(f"{path.name}: asset {str(key)[:80]}: {exc}") from None
        if local.suffix.lower() not in RASTER_SUFFIXES:
            continue
        eo = asset.get("eo:bands") or asset.get("bands") or []
        if not isinstance(eo, list) or not all(isinstance(b, dict) for b in eo):
            raise ValueError(f"{path.name}: asset {str(key)[:80]!r}: bands are not a list")
        names = [normalise_role(str(b.get("common_name") or b.get("name") or "")) for b in eo]
        roles = {n: i for i, n in enumerate(names, start=1) if n}
        if len(eo) > 1 and roles:
            multi = (local, roles)
        else:
            role = normalise_role(names[0] if names else key)
            singles[role] = local
    sensor = str(props.get("platform") or props.get("constellation") or "")
    sid = str(item.get("id") or path.stem)
    if "\0" in sid or len(sid) > 200:
        raise ValueError(f"{path.name}: unusable STAC id {sid[:80]!r}")
    if multi is not None:
        return scene_from_raster(multi[0], scene_id=sid, sensor=sensor or None, when=got[1],
                                 bands=multi[1], options=opts)
    if not singles:
        raise ValueError(f"{path.name}: no local GeoTIFF asset")
    work_dir.mkdir(parents=True, exist_ok=True)
    for single in singles.values():  # checked before stack_bands reads them
        with open_raster(single, opts.allowed_prefixes):
            pass
    # the id is text from the item: never a file name (``../../x`` would write outside)
    name = hashlib.sha256(sid.encode("utf-8", "backslashreplace")).hexdigest()[:24]
    stacked = stack_bands(singles, work_dir / f"{name}.tif")
    return scene_from_raster(stacked, scene_id=sid, sensor=sensor or None, when=got[1],
                             options=opts)


def _head(path: Path, limit: int = 64 * 1024) -> bytes:
    """What a dead letter keeps of a refused file: its first bytes (a STAC Item or a VRT is
    small and whole), not following a symlink out of the inbox (then its target's name)."""
    if path.is_symlink():
        return f"symlink to {os.readlink(path)}".encode(errors="backslashreplace")
    try:
        with path.open("rb") as fh:
            return fh.read(limit)
    except OSError:
        return path.name.encode(errors="backslashreplace")


def tile_windows(path: str | Path, tile_px: int, allowed: tuple[str, ...] = ()
                 ) -> list[tuple[int, int, int, int]]:
    """(col_off, row_off, width, height) windows of whole blocks, about ``tile_px`` wide."""
    from detectors.satellite_files import _windows

    with open_raster(path, allowed) as ds:
        return [(int(w.col_off), int(w.row_off), int(w.width), int(w.height))
                for w in _windows(ds, tile_px)]


def tile_id(crs: str, transform: Any, window: tuple[int, int, int, int]) -> str:
    """Grid-derived id: the same place on the same grid gets the same id on every date."""
    c, r, w, h = window
    x, y = transform * (c, r)
    return f"{crs.replace(':', '')}_{x:.0f}_{y:.0f}_{w}x{h}"


class SceneIndex:
    """Scenes seen (for baselines) and files processed, as JSON files in a state folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.scenes: dict[str, dict[str, Any]] = self._load("scenes.json")
        self.processed: dict[str, list[float]] = self._load("processed.json")

    def _load(self, name: str) -> dict[str, Any]:
        p = self.folder / name
        return json.loads(p.read_text()) if p.exists() else {}

    def _save(self, name: str, data: dict[str, Any]) -> None:
        tmp = self.folder / f"{name}.tmp"
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.folder / name)

    def baseline(self, scene: Scene, footprint: Any) -> dict[str, Any] | None:
        """The latest scene before ``scene`` whose footprint covers ``footprint``."""
        t = scene.time.timestamp()
        best = None
        for sid, s in self.scenes.items():
            if sid == scene.scene_id or s["time"] >= t:
                continue
            if shape(s["footprint"]).buffer(1e-9).covers(footprint) and (
                    best is None or s["time"] > best["time"]):
                best = {**s, "scene_id": sid}
        return best

    def add_scene(self, scene: Scene) -> None:
        self.scenes[scene.scene_id] = {"time": scene.time.timestamp(), "uri": scene.uri,
                                       "footprint": scene.footprint}
        self._save("scenes.json", self.scenes)

    def seen(self, path: Path) -> bool:
        st = path.stat()
        return self.processed.get(str(path.resolve())) == [st.st_size, st.st_mtime]

    def mark(self, path: Path) -> None:
        st = path.stat()
        self.processed[str(path.resolve())] = [st.st_size, st.st_mtime]
        self._save("processed.json", self.processed)


def make_tiles(scene: Scene, index: SceneIndex, tile_px: int,
               allowed: tuple[str, ...] = ()) -> list[Tile]:
    """Block-aligned tiles of a scene, each with its baseline from the index."""
    with open_raster(scene.uri, allowed) as ds:
        transform, crs = ds.transform, ds.crs
    out = []
    for win in tile_windows(scene.uri, tile_px, allowed):
        c, r, w, h = win
        x0, y0 = transform * (c, r)
        x1, y1 = transform * (c + w, r + h)
        fp = box(*transform_bounds(crs, "EPSG:4326", min(x0, x1), min(y0, y1), max(x0, x1),
                                   max(y0, y1)))
        base = index.baseline(scene, fp)
        out.append(Tile(
            tile_id=tile_id(scene.crs, transform, win), scene_id=scene.scene_id,
            time=scene.time, uri=scene.uri, window=win, bands=scene.bands,
            qa_band=scene.qa_band, baseline_scene_id=base["scene_id"] if base else None,
            baseline_uri=base["uri"] if base else None,
            baseline_time=datetime.fromtimestamp(base["time"], UTC) if base else None))
    return out


def load_scene(path: Path, work_dir: Path, options: InboxOptions | None = None) -> Scene:
    if path.suffix.lower() == ".json":
        return scene_from_stac(path, work_dir, options)
    return scene_from_raster(path, options=options)


class InboxIngester:
    """Scans the inbox, publishes new scenes and their tiles (acks=all) in time order."""

    def __init__(self, inbox: Path, state: Path, publisher: Any,
                 options: InboxOptions | None = None) -> None:
        self.inbox = inbox
        self.index = SceneIndex(state)
        self.publisher = publisher
        self.options = options or InboxOptions()
        self.failed: dict[str, list[float]] = {}

    def ready(self) -> list[Path]:
        now = time.time()
        out = []
        for p in sorted(self.inbox.iterdir()):
            if p.suffix.lower() not in (*RASTER_SUFFIXES, ".json", ".csv") or not p.is_file():
                continue
            if not p.resolve().is_relative_to(self.inbox.resolve()):
                out.append(p)  # a symlink out of the inbox: refused (and kept) by scan_once
                continue
            st = p.stat()
            if now - st.st_mtime < self.options.settle_s or self.index.seen(p):
                continue
            if self.failed.get(str(p)) == [st.st_size, st.st_mtime]:
                continue
            out.append(p)
        return out

    async def scan_once(self) -> int:
        """Publish every ready file; returns the number of scenes sent."""
        scenes: list[tuple[Path, Scene]] = []
        for p in self.ready():
            try:
                if not p.resolve().is_relative_to(self.inbox.resolve()):
                    raise RasterRefused(f"{p.name} links outside the inbox")
                if is_firms_file(p):  # FIRMS hotspots: to sat.fires (ingest.firms)
                    await ingest_firms_file(p, self.publisher)
                    self.index.mark(p)
                    continue
                scenes.append((p, await asyncio.to_thread(
                    load_scene, p, self.index.folder / "stacked", self.options)))
            except Exception as exc:
                st = p.lstat()
                self.failed[str(p)] = [st.st_size, st.st_mtime]
                await self.publisher.reject(_head(p), f"unusable scene: {exc}", path=str(p),
                                            name=p.name)
        # Oldest first: a batch dropped at once still gets its baselines right.
        for p, scene in sorted(scenes, key=lambda ps: ps[1].time):
            await self.publish(scene)
            self.index.mark(p)
        return len(scenes)

    async def publish(self, scene: Scene) -> None:
        tiles = await asyncio.to_thread(make_tiles, scene, self.index, self.options.tile_px,
                                        self.options.allowed_prefixes)
        await self.publisher.publish(SAT_SCENES, scene.scene_id, scene)
        futures = [await self.publisher.send(SAT_TILES, t.tile_id, t) for t in tiles]
        for f in futures:
            await f
        self.index.add_scene(scene)
        log.info("scene %s (%s, %s): %d tile(s), baseline(s) %s", scene.scene_id,
                 scene.sensor, scene.time.date(), len(tiles),
                 sorted({t.baseline_scene_id or "-" for t in tiles}))

    async def run(self, stop: asyncio.Event) -> None:
        log.info("watching %s for scenes", self.inbox)
        while not stop.is_set():
            try:
                await self.scan_once()
            except Exception:
                log.exception("inbox scan failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.options.scan_s)
            except TimeoutError:
                pass
