"""Motion on a small grey frame, centroid tracking and line crossing.

The motion detector follows Frigate's design because it is cheap (about a millisecond on a
frame ~144 px high) and proven on thousands of cameras: grey, blur, contrast stretch,
difference against a running-average background, pixel threshold, dilation, contour area
filter, masks. The contrast stretch (1st..99th percentile to 0..255) makes the frame
invariant to a global gain change (a cloud, auto exposure: ``frame * 0.6`` stretches back
to the same picture); whatever is left of a sudden global change (lights on/off, IR switch)
is caught by the relearn rule: when more than ``relearn_fraction`` of the unmasked frame
changes at once, the background is reset to the current frame and no motion is reported.

Tracking is deliberately simple: greedy nearest-centroid matching between consecutive
samples, a track survives ``track_max_missing`` samples without a match. Good enough for
counting tripwire crossings of one-at-a-time movers at a few fps; crowds need a real
object tracker on top of an object detector.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from detectors.order_stats import int_percentiles
from detectors.video_config import MotionSettings


@dataclass
class Blob:
    """A moving region, in the small motion frame's pixels."""

    x: int
    y: int
    w: int
    h: int
    area: int

    @property
    def centroid(self) -> tuple[float, float]:
        return (self.x + self.w / 2.0, self.y + self.h / 2.0)


@dataclass
class MotionResult:
    """One frame's motion: the kept mask (after area filter), blobs, and whether the
    background was relearned (then nothing counts as motion)."""

    mask: np.ndarray
    blobs: list[Blob]
    changed_fraction: float
    relearned: bool


class MotionDetector:
    """Running-average background subtraction on a small grey frame."""

    def __init__(self, settings: MotionSettings, frame_size: tuple[int, int],
                 ignore_mask: np.ndarray | None = None) -> None:
        """``frame_size`` is the (w, h) of the small frame; ``ignore_mask`` (255 = ignore)
        is at that size."""
        self.s = settings
        self.size = frame_size
        self.ignore = ignore_mask
        self.valid_pixels = float(frame_size[0] * frame_size[1])
        if ignore_mask is not None:
            self.valid_pixels = max(1.0, float(np.count_nonzero(ignore_mask == 0)))
        self.avg: np.ndarray | None = None
        self.prev: np.ndarray | None = None
        self.min_contour = settings.contour_area * frame_size[0] * frame_size[1]
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))

    def reset(self) -> None:
        """Forget the background (after tamper, the scene is new)."""
        self.avg = None
        self.prev = None

    def prepare(self, grey_small: np.ndarray) -> np.ndarray:
        """Blur and contrast-stretch, so a global gain change leaves the frame unchanged."""
        blurred = cv2.GaussianBlur(grey_small, (3, 3), 0)
        sample = blurred if self.ignore is None else blurred[self.ignore == 0]
        lo, hi = (0.0, 255.0)
        if sample.size:  # a uint8 frame: percentiles from its histogram, as np.percentile
            lo, hi = (int_percentiles(sample, (1, 99)) if sample.dtype == np.uint8
                      else np.percentile(sample, (1, 99)))
        if hi - lo < 8:  # flat frame: stretching would only amplify noise
            return blurred.astype(np.float32)
        stretched = (blurred.astype(np.float32) - lo) * (255.0 / (hi - lo))
        return np.clip(stretched, 0, 255)

    def detect(self, grey_small: np.ndarray) -> MotionResult:
        frame = self.prepare(grey_small)
        empty = np.zeros(frame.shape, np.uint8)
        if self.avg is None:
            self.avg, self.prev = frame.copy(), frame
            return MotionResult(empty, [], 0.0, True)
        delta = cv2.absdiff(frame, self.avg)
        thresh = (delta > self.s.threshold).astype(np.uint8) * 255
        if self.ignore is not None:
            thresh[self.ignore > 0] = 0
        changed = float(np.count_nonzero(thresh)) / self.valid_pixels
        if changed > self.s.relearn_fraction:
            self.avg, self.prev = frame.copy(), frame
            return MotionResult(empty, [], changed, True)
        prev, self.prev = self.prev, frame
        cv2.accumulateWeighted(frame, self.avg, self.s.frame_alpha)
        thresh = cv2.dilate(thresh, self._kernel, iterations=2)
        moving = (cv2.absdiff(frame, prev if prev is not None else frame)
                  > self.s.threshold).astype(np.uint8)
        contours, _ = cv2.findContours(thresh, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        kept = np.zeros_like(thresh)
        boxes: list[list[int]] = []
        for contour in contours:
            area = cv2.contourArea(contour)
            if area < self.min_contour:
                continue
            blob = np.zeros_like(thresh)
            cv2.drawContours(blob, [contour], -1, 255, thickness=cv2.FILLED)
            if np.count_nonzero(moving[blob > 0]) < self.s.ghost_fraction * area:
                # Differs from the background but not from the last sample: a ghost
                # (someone left after standing still) or a stationary object. Absorb it
                # into the background now instead of over ~1/alpha samples.
                self.avg[blob > 0] = frame[blob > 0]
                continue
            kept |= blob
            boxes.append(list(cv2.boundingRect(contour)))
        blobs = [Blob(x, y, w, h, int(np.count_nonzero(kept[y:y + h, x:x + w])))
                 for x, y, w, h in merge_boxes(boxes, pad=max(2, self.size[1] // 20))]
        return MotionResult(kept, blobs, changed, False)


def merge_boxes(boxes: list[list[int]], pad: int) -> list[list[int]]:
    """Merge boxes that overlap once padded: a walking person often yields several
    contours (head, torso, legs) that should be one mover."""
    merged = [b[:] for b in boxes]
    changed = True
    while changed:
        changed = False
        out: list[list[int]] = []
        for box in merged:
            for other in out:
                if (box[0] - pad < other[0] + other[2] and other[0] - pad < box[0] + box[2]
                        and box[1] - pad < other[1] + other[3]
                        and other[1] - pad < box[1] + box[3]):
                    x0, y0 = min(box[0], other[0]), min(box[1], other[1])
                    x1 = max(box[0] + box[2], other[0] + other[2])
                    y1 = max(box[1] + box[3], other[1] + other[3])
                    other[:] = [x0, y0, x1 - x0, y1 - y0]
                    changed = True
                    break
            else:
                out.append(box)
        merged = out
    return merged


@dataclass
class Track:
    """A mover followed over samples: its last two centroids and per-line state."""

    track_id: int
    centroid: tuple[float, float]
    previous: tuple[float, float] | None = None
    missing: int = 0
    last_crossing: dict[str, str] = field(default_factory=dict)


class CentroidTracker:
    """Greedy nearest-centroid tracker (see the module docstring for its limits)."""

    def __init__(self, max_distance: float, max_missing: int) -> None:
        self.max_distance = max_distance
        self.max_missing = max_missing
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, centroids: list[tuple[float, float]]) -> list[Track]:
        """Match centroids to tracks; return tracks that moved this sample."""
        pairs = sorted(
            ((np.hypot(c[0] - t.centroid[0], c[1] - t.centroid[1]), ti, ci)
             for ti, t in enumerate(self.tracks) for ci, c in enumerate(centroids)),
            key=lambda p: p[0])
        used_t: set[int] = set()
        used_c: set[int] = set()
        moved: list[Track] = []
        for dist, ti, ci in pairs:
            if dist > self.max_distance or ti in used_t or ci in used_c:
                continue
            used_t.add(ti)
            used_c.add(ci)
            track = self.tracks[ti]
            track.previous, track.centroid, track.missing = track.centroid, centroids[ci], 0
            moved.append(track)
        for ti, track in enumerate(self.tracks):
            if ti not in used_t:
                track.missing += 1
        self.tracks = [t for t in self.tracks if t.missing <= self.max_missing]
        for ci, c in enumerate(centroids):
            if ci not in used_c:
                self.tracks.append(Track(self._next_id, c))
                self._next_id += 1
        return moved

    def clear(self) -> None:
        self.tracks = []


def side_of(a: np.ndarray, b: np.ndarray, p: tuple[float, float]) -> float:
    """> 0 when ``p`` is right of a->b (image y grows downwards), < 0 when left."""
    return float((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]))


def crossing(a: np.ndarray, b: np.ndarray, p0: tuple[float, float],
             p1: tuple[float, float]) -> str | None:
    """Direction in which the step p0->p1 crosses segment a-b, or None."""
    s0, s1 = side_of(a, b, p0), side_of(a, b, p1)
    if s0 == 0 or s1 == 0 or (s0 > 0) == (s1 > 0):
        return None
    # The step must also cross within the segment's extent, not its extension.
    t0 = side_of(np.asarray(p0), np.asarray(p1), tuple(a))
    t1 = side_of(np.asarray(p0), np.asarray(p1), tuple(b))
    if (t0 > 0) == (t1 > 0) and t0 != 0 and t1 != 0:
        return None
    return "left_to_right" if s0 < 0 else "right_to_left"
