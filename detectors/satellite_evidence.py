"""Evidence for a change polygon: before/after PNG thumbnails with the outline, a GeoTIFF crop.

Why: an inspector acts on what they can see (MapBiomas-style before/after pairs), and the
crop lets anyone re-run the numbers. Every item carries its sha256 so the evidence store
can fix and sign it; the content is deterministic for the same input.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from rasterio.io import MemoryFile
from rasterio.windows import Window, from_bounds
from shapely.geometry import mapping, shape

from contract.clue import Clue, EvidenceRef
from detectors.satellite import ChangePolygon, DetectParams
from detectors.satellite_files import _open_pair, band_roles


def _ref(media_type: str, name: str, content: bytes) -> EvidenceRef:
    return EvidenceRef(media_type=media_type, name=name, content=content,
                       sha256=hashlib.sha256(content).hexdigest())


def _rgb(ds: Any, roles: Mapping[str, int], win: Window) -> np.ndarray:
    """True colour when possible, else false colour from whatever bands exist."""
    for combo in (("red", "green", "blue"), ("swir1", "nir", "red"), ("nir", "red", "red")):
        if all(c in roles for c in combo):
            data = ds.read([roles[c] for c in combo], window=win, boundless=False)
            break
    else:
        first = ds.read(1, window=win)
        data = np.stack([first] * 3)
    data = data.astype(np.float32)
    lo = np.nanpercentile(data, 2, axis=(1, 2))[:, None, None]
    hi = np.nanpercentile(data, 98, axis=(1, 2))[:, None, None]
    return np.moveaxis(np.clip((data - lo) / np.maximum(hi - lo, 1e-6), 0, 1), 0, -1)


def _png(rgb: np.ndarray, outline: Any, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 3), dpi=100)
    ax = fig.add_subplot(111)
    ax.imshow(rgb, interpolation="nearest")
    for poly in getattr(outline, "geoms", [outline]):
        x, y = poly.exterior.xy
        ax.plot(np.asarray(x) - 0.5, np.asarray(y) - 0.5, color="yellow", linewidth=1.2)
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def polygon_evidence(before_path: str | Path, after_path: str | Path, poly: ChangePolygon,
                     *, band_map: Mapping[str, int] | None = None, margin_px: int = 16,
                     name: str = "change", before_label: str = "before",
                     after_label: str = "after") -> list[EvidenceRef]:
    """Before/after PNGs with the outline and an AFTER GeoTIFF crop, each with sha256."""
    with _open_pair(Path(before_path), Path(after_path)) as (a_ds, b_ds, _):
        ra = band_roles(a_ds, band_map)
        rb = ra if band_map else band_roles(b_ds, None) or ra
        to_map = Transformer.from_crs("EPSG:4326", a_ds.crs, always_xy=True)
        geom = shapely.transform(shape(poly.geometry), lambda xy: np.column_stack(
            to_map.transform(xy[:, 0], xy[:, 1])))
        win = from_bounds(*geom.bounds, transform=a_ds.transform).round_offsets().round_lengths()
        win = Window(win.col_off - margin_px, win.row_off - margin_px,
                     win.width + 2 * margin_px, win.height + 2 * margin_px)
        win = win.intersection(Window(0, 0, a_ds.width, a_ds.height))
        wt = a_ds.window_transform(win)
        inv = ~wt
        outline = shapely.affinity.affine_transform(
            geom, [inv.a, inv.b, inv.d, inv.e, inv.c, inv.f])
        pngs = [_png(_rgb(b_ds, rb, win), outline, before_label),
                _png(_rgb(a_ds, ra, win), outline, after_label)]
        profile = a_ds.profile.copy()
        profile.update(driver="GTiff", width=int(win.width), height=int(win.height),
                       transform=wt, tiled=False, compress="deflate")
        profile.pop("blockxsize", None)
        profile.pop("blockysize", None)
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                dst.write(a_ds.read(window=win))
                dst.descriptions = a_ds.descriptions
            tif = mem.read()
    return [_ref("image/png", f"{name}_before.png", pngs[0]),
            _ref("image/png", f"{name}_after.png", pngs[1]),
            _ref("image/tiff", f"{name}_after_crop.tif", tif)]


def to_clues(polys: list[ChangePolygon], *, subject: str, before_time: datetime,
             after_time: datetime, before_label: str = "", after_label: str = "",
             params: DetectParams | None = None,
             evidence: Mapping[int, list[EvidenceRef]] | None = None) -> list[Clue]:
    """One clue per polygon; times come from the caller (the detector reads no clock).

    ``start`` is the AFTER acquisition (the first look that shows the change); the rule
    includes the polygon's rounded centroid so one scene gives distinct clue ids.
    """
    p = params or DetectParams()
    out = []
    for i, poly in enumerate(polys):
        c = shape(poly.geometry).centroid
        out.append(Clue(
            modality="satellite", kind=poly.kind,
            rule=f"{poly.rule}@{c.x:.5f},{c.y:.5f}", subject=subject, state="open",
            start=after_time, time=after_time, confidence=poly.confidence,
            location=poly.geometry,
            metrics={"area_m2": round(poly.area_m2, 1), "pixels": poly.pixels,
                     "mean_score": round(poly.mean_score, 3), "zones": poly.zones,
                     "kind_fractions": poly.kind_fractions,
                     "before": before_label or before_time.isoformat(),
                     "after": after_label or after_time.isoformat(),
                     "before_time": before_time.isoformat()},
            summary=(f"{poly.kind.replace('_', ' ')} of {poly.area_m2 / 10_000:.2f} ha"
                     + (f" in zone(s) {', '.join(poly.zones)}" if poly.zones else "")),
            detector="satellite.change", detector_version="1",
            params=p.as_dict(), evidence=list((evidence or {}).get(i, []))))
    return out


def centroid_feature(poly: ChangePolygon) -> dict[str, Any]:
    """A point feature for maps that cannot draw small polygons."""
    return {"type": "Feature", "geometry": mapping(shape(poly.geometry).centroid),
            "properties": poly.properties()}
