"""The satellite detector of one tile, as a plug-in (``type: satellite``).

A tile (``contract.records.Tile``: a block-aligned window of a scene plus its baseline scene)
is looked at once per acquisition. ``TileMonitor.observe(tile)`` reads the window of the new
scene and of its baseline (put on the new scene's grid by a ``WarpedVRT`` when the grids
differ), runs ``detect_tile``, also checks each pending alert against the alert's *own*
baseline (against the latest scene an old change no longer shows), and hands the looks to
the multi-look confirmation (``detectors.satellite_confirm``). It reads files, never a
clock, Kafka or the database; its state is the confirmation's JSON-able dict, so a table
keyed by tile can hold it.

``detect_pair`` and ``look`` are the same steps the worker's satellite agent runs
(``streams/satellite.py``), here so that the offline path and the plug-in share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from rasterio.windows import Window

from contract.clue import Clue
from contract.records import Tile
from detectors.plugin import DetectorConfig, register
from detectors.raster_guard import open_raster
from detectors.satellite import DetectParams, detect_tile
from detectors.satellite_confirm import ConfirmParams, new_state, observe, pending_baselines
from detectors.satellite_evidence import to_clues
from detectors.satellite_files import _open_pair, _read, band_roles


class SatelliteConfig(DetectorConfig):
    """Plug-in config of the satellite detector (``type: satellite``)."""

    type: Literal["satellite"] = "satellite"
    confirm_looks: int = Field(default=2, ge=1, description="agreeing looks that confirm")
    window_looks: int = Field(default=4, ge=1, description="looks after the first to agree in")
    expire_days: float = Field(default=90.0, gt=0, description="unconfirmed alerts expire")
    low_factor: float = Field(default=0.5, gt=0, le=1, description="confidence of one look")
    detect: DetectParams = Field(default_factory=DetectParams, description="change detection")
    allowed_prefixes: tuple[str, ...] = Field(
        default=(), description="GDAL paths outside local files that tiles may name "
        "(settings.satellite_allowed_prefixes); nothing else remote or virtual is opened")

    @property
    def confirm(self) -> ConfirmParams:
        return ConfirmParams(confirm_looks=self.confirm_looks, window_looks=self.window_looks,
                             expire_days=self.expire_days, low_factor=self.low_factor)


def _roles(ds: Any, bands: dict[str, int], qa_band: int | None) -> dict[str, int]:
    roles = dict(bands) if bands else band_roles(ds, None)
    if qa_band:
        roles["qa"] = qa_band
    return roles


def detect_pair(baseline_uri: str, tile: Tile, params: DetectParams | None = None,
                allowed: Sequence[str] = ()) -> list[Clue]:
    """Clues of one tile window: ``tile.uri`` against ``baseline_uri`` (both opened through
    ``raster_guard``: GeoTIFF only, no network, ``allowed`` prefixes only)."""
    params = params or DetectParams()
    c, r, w, h = tile.window
    win = Window(c, r, w, h)
    with _open_pair(Path(baseline_uri), Path(tile.uri), allowed) as (a_ds, b_ds, bq_ds):
        ra = _roles(a_ds, tile.bands, tile.qa_band)
        with open_raster(baseline_uri, allowed) as raw:
            rb = _roles(raw, {}, None) or ra
        names = tuple(n for n in ra if n in rb and n != "qa")
        bb, vb = _read(b_ds, bq_ds, rb, names, win, None, params.qa_kind)
        aa, va = _read(a_ds, a_ds, ra, names, win, None, params.qa_kind)
        transform, crs = a_ds.window_transform(win), a_ds.crs
    valid = vb & va
    before = {n: np.where(valid, v.astype(np.float32), np.nan) for n, v in bb.items()}
    after = {n: np.where(valid, v.astype(np.float32), np.nan) for n, v in aa.items()}
    if valid.sum() < 16:
        return []
    polys = detect_tile(before, after, transform, crs, params=params)
    base_time = tile.baseline_time or tile.time
    return to_clues(polys, subject=tile.tile_id, before_time=base_time, after_time=tile.time,
                    before_label=Path(baseline_uri).name, after_label=tile.scene_id,
                    params=params)


def look(tile: Tile, pending: set[str], params: DetectParams | None = None,
         allowed: Sequence[str] = ()) -> tuple[list[Clue], dict[str, list[Clue]]]:
    """New changes against the tile's baseline, and against each pending alert's baseline."""
    new = detect_pair(tile.baseline_uri, tile, params, allowed) if tile.baseline_uri else []
    by_base: dict[str, list[Clue]] = {}
    for uri in pending:
        if uri == tile.baseline_uri:
            by_base[uri] = new
        elif uri and Path(uri).exists():
            by_base[uri] = detect_pair(uri, tile, params, allowed)
    return new, by_base


class TileMonitor:
    """Change detection and multi-look confirmation of one tile (see the module docstring)."""

    def __init__(self, config: SatelliteConfig, tile_id: str,
                 state: dict[str, Any] | None = None) -> None:
        self.config = config
        self.tile_id = tile_id
        self.state = state if state is not None else new_state()

    def observe(self, tile: Tile) -> list[Clue]:
        """Clues (new low-confidence alerts, confirmed or expired ones) of one acquisition;
        a re-sent or out-of-order acquisition (not later than the last one) gives none."""
        if tile.tile_id != self.tile_id:
            raise ValueError(f"tile {tile.tile_id} given to the monitor of {self.tile_id}")
        if not self.is_new(tile):
            return []
        new, by_base = look(tile, pending_baselines(self.state), self.config.detect,
                            self.config.allowed_prefixes)
        self.state, clues = observe(self.state, tile.time, tile.baseline_uri, new, by_base,
                                    self.config.confirm)
        return clues

    def is_new(self, tile: Tile) -> bool:
        """Whether ``tile`` is later than every acquisition looked at already."""
        last = self.state["last_time"]
        return last is None or tile.time.timestamp() > last

    def flush(self) -> list[Clue]:
        """Nothing to close: pending alerts wait for the tile's next acquisitions."""
        return []

    def to_state(self) -> dict[str, Any]:
        return self.state


def _factory(config: Any, subject: str, state: dict[str, Any] | None) -> TileMonitor:
    return TileMonitor(config, subject, state)


register(SatelliteConfig, _factory)
