"""Camera tamper: occlusion, defocus and shift, against a reference the camera learns.

What Frigate users ask for and it lacks (see DOMAIN.md). Each measure is chosen to be
blind to a global brightness change, which is the commonest false alarm:

* occlusion: the frame is dark (mean grey below ``dark_level``) or most blocks that had
  texture in the reference are now flat (block std below ``flat_std``): a hand, tape, a
  bag or paint. Comparing with the reference's textured blocks keeps a white wall, flat
  by nature, from counting.
* defocus: sharpness = var(Laplacian) / var(grey). The ratio cancels gain (both scale by
  gain squared); on person_room.mp4 (at the default 180 px high) it sits in 0.074..0.117
  with people walking through and falls below 0.0075 under a Gaussian blur of sigma 3, so
  ``defocus_ratio`` = 0.4 of the reference has wide margins.
* shift: ORB features of the frame matched to the reference's, a similarity transform fit
  with RANSAC. Shift when the translation exceeds ``shift_fraction`` of the width, the
  scale changes by more than ``scale_change`` (zoom), or fewer than ``min_inliers``
  features match (the camera looks at something else) while the picture is still sharp
  (a blurred frame loses its features: that is defocus, not shift). A zoom also lowers
  sharpness, so a zoomed camera may raise both. We judge the geometry, not the
  inlier ratio: on person_room.mp4 the ratio falls to 0.11 when people cover the scene,
  while the fitted translation stays under 1 px.
* shift gate: the match above is most of a sample's cost (ORB, brute-force matching), and
  a camera rarely moves, so it is re-run only when the picture has changed since the last
  match (the *anchor*): on a 160 px wide thumbnail, at least ``GATE_FRACTION`` of the
  anchor's textured 10 px cells differ by more than ``GATE_DIFF`` grey levels on average.
  Otherwise the anchor's verdict holds. The anchor is the last *matched* frame, not the
  previous one, so a slow pan adds up; a pan of 0.5 % of the width already trips it (the
  alarm is at 6 %), while people walking through a fixed view mostly do not (on the
  bench clip 80 % of the samples skip the match).

The reference is learned from the first ``learn_frames`` samples and refreshed every
``refresh_frames`` samples while no condition holds, so slow scene changes (seasons,
furniture) are absorbed; a very slow deliberate pan would be absorbed too (documented).
Its textured blocks are those textured in three quarters of the learning frames (at a
refresh: of ``TEXTURE_SAMPLES`` normal frames spread over the period), so something
passing through the view when the reference is taken is not taken for the scene.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from detectors.video_config import TamperSettings

BLOCKS = 8  # grid of BLOCKS x BLOCKS cells for the occlusion test
TEXTURED_STD = 12.0  # a reference block with at least this std counts as textured
TEXTURE_SAMPLES = 8  # normal frames, spread over a refresh period, a refresh's texture uses
# Shift gate (see the module docstring): thumbnail width and cell size in pixels, the mean
# |difference| of a cell that counts as changed, and the share of the anchor's textured
# cells (std >= GATE_TEXTURE) that must change before the reference match runs again.
GATE_WIDTH = 160
GATE_BLOCK = 10
GATE_DIFF = 6.0
GATE_TEXTURE = 4.0
GATE_FRACTION = 0.25


@dataclass
class TamperReading:
    """Raw conditions of one frame (before confirm/clear debouncing) and their numbers."""

    conditions: dict[str, bool]
    metrics: dict[str, float] = field(default_factory=dict)
    learning: bool = False


def block_std(grey: np.ndarray, grid: tuple[int, int] = (BLOCKS, BLOCKS)) -> np.ndarray:
    """Std of each cell of a ``grid`` (columns, rows), from block means of x and x²:
    ``INTER_AREA`` to a whole fraction of the size is an exact block mean, and profiled at
    a fifth of numpy's reshape-and-std."""
    h, w = grey.shape
    cells = grey[: h - h % grid[1], : w - w % grid[0]].astype(np.float32)
    mean = cv2.resize(cells, grid, interpolation=cv2.INTER_AREA)
    square = cv2.resize(cv2.multiply(cells, cells), grid, interpolation=cv2.INTER_AREA)
    return np.sqrt(np.maximum(square - mean * mean, 0.0))


def mean_var(image: np.ndarray) -> tuple[float, float]:
    """Mean and variance in one OpenCV pass (numpy's ``var`` costs 30x more here)."""
    mean, std = cv2.meanStdDev(image)
    return float(mean[0, 0]), float(std[0, 0]) ** 2


def sharpness(grey: np.ndarray, grey_var: float | None = None) -> float:
    """var(Laplacian) / var(grey): blind to gain (both scale by gain squared)."""
    if grey_var is None:
        grey_var = mean_var(grey)[1]
    return mean_var(cv2.Laplacian(grey, cv2.CV_32F))[1] / max(grey_var, 1.0)


def thumbnail(grey: np.ndarray) -> np.ndarray:
    """The shift gate's small grey picture, about ``GATE_WIDTH`` wide: the frame shrunk by
    a whole factor (``INTER_AREA``'s fast path), cut to whole ``GATE_BLOCK`` cells."""
    h, w = grey.shape
    f = max(1, round(w / GATE_WIDTH))
    cw, ch = (w // f) // GATE_BLOCK * GATE_BLOCK, (h // f) // GATE_BLOCK * GATE_BLOCK
    if cw == 0 or ch == 0:
        return cv2.resize(grey, (GATE_BLOCK, GATE_BLOCK), interpolation=cv2.INTER_AREA)
    return cv2.resize(grey[: ch * f, : cw * f], (cw, ch), interpolation=cv2.INTER_AREA)


class TamperDetector:
    """Learns the camera's normal view and reports which tamper conditions hold."""

    def __init__(self, settings: TamperSettings) -> None:
        self.s = settings
        self._orb = cv2.ORB_create(nfeatures=500)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
        self._learn: list[float] = []
        self.ref_sharpness: float | None = None
        self.ref_textured: np.ndarray | None = None
        self._ref_kp: list[cv2.KeyPoint] = []
        self._ref_desc: np.ndarray | None = None
        self._normal_count = 0
        #: block stds of the learning frames, then of normal frames spaced over a refresh
        #: period: the reference's texture is what stays textured across them
        self._texture: list[np.ndarray] = []
        # (thumbnail, its textured cells, defocused, verdict) of the last reference match
        self._anchor: tuple[np.ndarray, np.ndarray, bool, tuple[bool, dict[str, float]]] | \
            None = None
        self.matches_skipped = 0  # samples whose reference match the gate made unneeded

    @property
    def learned(self) -> bool:
        return self.ref_sharpness is not None

    def _set_reference(self, grey: np.ndarray) -> None:
        # a block is the scene's texture when it is textured in most of the frames seen,
        # not in one: a person or car in view when the reference is taken would otherwise
        # leave textured blocks that go flat when it leaves, and the camera would read
        # "occluded" for good (no refresh happens while a condition holds)
        frames = self._texture or [block_std(grey)]
        share = np.mean([f >= TEXTURED_STD for f in frames], axis=0)
        self.ref_textured = share >= 0.75
        kp, desc = self._orb.detectAndCompute(grey, None)
        self._ref_kp, self._ref_desc = list(kp), desc
        self._anchor = None  # verdicts were against the old reference

    def _gated_shift(self, grey: np.ndarray,
                     defocused: bool) -> tuple[bool, dict[str, float]]:
        """The reference match, re-run only when the picture differs from the last one
        matched (the anchor); otherwise the anchor's verdict still holds."""
        thumb = thumbnail(grey)
        if self._anchor is not None and self._anchor[2] == defocused:
            anchor, textured, _, verdict = self._anchor
            if textured.any():
                grid = (thumb.shape[1] // GATE_BLOCK, thumb.shape[0] // GATE_BLOCK)
                diff = cv2.resize(cv2.absdiff(thumb, anchor), grid,
                                  interpolation=cv2.INTER_AREA)
                if float((diff[textured] > GATE_DIFF).mean()) < GATE_FRACTION:
                    self.matches_skipped += 1
                    return verdict
        verdict = self._shift(grey, grey.shape[1], defocused)
        grid = (thumb.shape[1] // GATE_BLOCK, thumb.shape[0] // GATE_BLOCK)
        self._anchor = (thumb, block_std(thumb, grid) >= GATE_TEXTURE, defocused, verdict)
        return verdict

    def _shift(self, grey: np.ndarray, width: int,
               defocused: bool) -> tuple[bool, dict[str, float]]:
        if self._ref_desc is None or len(self._ref_kp) < 2 * self.s.min_inliers:
            return False, {}  # a textureless scene: shift cannot be judged
        kp, desc = self._orb.detectAndCompute(grey, None)
        matches = self._matcher.match(self._ref_desc, desc) if desc is not None else []
        inliers, dx, dy, scale = 0, 0.0, 0.0, 1.0
        if len(matches) >= 4:
            src = np.float32([self._ref_kp[m.queryIdx].pt for m in matches])
            dst = np.float32([kp[m.trainIdx].pt for m in matches])
            model, inl = cv2.estimateAffinePartial2D(src, dst, ransacReprojThreshold=3.0)
            if model is not None:
                inliers = int(inl.sum())
                dx, dy = float(model[0, 2]), float(model[1, 2])
                scale = float(np.sqrt(abs(np.linalg.det(model[:, :2]))))
        offset = float(np.hypot(dx, dy)) / width
        metrics = {"inliers": inliers, "offset": round(offset, 4), "scale": round(scale, 4)}
        if inliers < self.s.min_inliers:  # the scene is gone, unless blur explains it
            return not defocused, metrics
        return offset > self.s.shift_fraction or abs(scale - 1.0) > self.s.scale_change, metrics

    def update(self, grey: np.ndarray) -> TamperReading:
        """Judge one grey frame at the tamper resolution (``frame_height`` px high)."""
        mean, grey_var = mean_var(grey)
        stds = block_std(grey)
        sharp = sharpness(grey, grey_var)
        metrics: dict[str, float] = {"mean": round(mean, 2), "sharpness": round(sharp, 5)}
        dark = mean < self.s.dark_level
        if not self.learned:
            if dark or float(stds.max()) < self.s.flat_std:
                return TamperReading({}, metrics, learning=True)  # never learn a covered lens
            self._learn.append(sharp)
            self._texture.append(stds)
            if len(self._learn) >= self.s.learn_frames:
                self.ref_sharpness = float(np.median(self._learn))
                self._set_reference(grey)
            return TamperReading({}, metrics, learning=True)

        assert self.ref_textured is not None and self.ref_sharpness is not None
        textured = int(self.ref_textured.sum())
        lost = float((self.ref_textured & (stds < self.s.flat_std)).sum()) / max(textured, 1)
        if textured == 0:
            lost = 1.0 if float(stds.max()) < self.s.flat_std else 0.0
        metrics["flat_fraction"] = round(lost, 3)
        occluded = dark or lost >= self.s.occluded_fraction
        ratio = sharp / max(self.ref_sharpness, 1e-9)
        metrics["sharpness_ratio"] = round(ratio, 3)
        defocused = not occluded and ratio < self.s.defocus_ratio
        shifted = False
        if not occluded:  # a zoom also softens the picture: judge shift when defocused
            shifted, shift_metrics = self._gated_shift(grey, defocused)
            metrics.update(shift_metrics)
        conditions = {"occlusion": occluded, "defocus": defocused, "shift": shifted}
        if any(conditions.values()):
            self._normal_count = 0
        else:
            self._normal_count += 1
            # Follow slow change: sharpness by a slow average, the picture now and then.
            self.ref_sharpness = 0.98 * self.ref_sharpness + 0.02 * sharp
            spacing = max(1, self.s.refresh_frames // TEXTURE_SAMPLES)
            if self._normal_count % spacing == 0:
                self._texture = (self._texture + [stds])[-TEXTURE_SAMPLES:]
            if self._normal_count % self.s.refresh_frames == 0:
                self._set_reference(grey)
        return TamperReading(conditions, metrics)
