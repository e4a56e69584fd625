"""Motion on a small grey frame, centroid tracking and line crossing.

The motion detector follows Frigate's design because it is cheap (about a millisecond on a
frame ~144 px high) and proven on thousands of cameras: grey, blur, difference against a
running-average background, pixel threshold, dilation, contour area filter, masks. A
global gain change (a cloud, auto exposure: ``frame * 0.6``) is divided out with the median
ratio of frame to background; whatever is left of a sudden global change (lights on/off,
IR switch) is caught by the relearn rule: when more than ``relearn_fraction`` of the
unmasked frame changes at once, the background is warmed up again and no motion is
reported meanwhile. A blob counts by its changed pixels, not its dilated outline, and only
while it differs from the previous sample too (it moves): a ghost or lingering noise that
stands still is absorbed into the background.

Tracking is deliberately simple: greedy nearest-centroid matching between consecutive
samples, a track survives ``track_max_missing`` samples without a match. Good enough for
counting tripwire crossings of one-at-a-time movers at a few fps; crowds need a real
object tracker on top of an object detector.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from detectors.video_config import MotionSettings

WARMUP_KEEP = 16  # newest warm-up frames kept for the median (bounded memory at any fps)


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
    """One frame's motion: the kept mask (changed pixels of the blobs kept), blobs, and
    whether the background is being (re)learned (then nothing counts as motion)."""

    mask: np.ndarray
    blobs: list[Blob]
    changed_fraction: float
    relearned: bool
    still: list[Blob] = field(default_factory=list)  # absorbed this frame (see detect)


class MotionDetector:
    """Running-average background subtraction on a small grey frame.

    The background is first learned, not guessed: for ``warmup_s`` of frame time (and at
    least ``warmup_frames`` frames) after the first frame, after ``reset()`` (tamper, a
    reconnect) and after a relearn, frames are only collected and nothing counts as motion;
    the background is then their per-pixel median, so a car or a person passing during the
    warm-up is not frozen into it as a ghost that later "moves".
    """

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
        self._warm: deque[np.ndarray] = deque(maxlen=WARMUP_KEEP)
        self._warm_from: float | None = None
        self._warm_count = 0

    def reset(self) -> None:
        """Forget the background (after tamper or a reconnect, the scene may be new): the
        next frames warm a new one up."""
        self.avg = None
        self.prev = None
        self._warm.clear()
        self._warm_from = None
        self._warm_count = 0

    def prepare(self, grey_small: np.ndarray) -> np.ndarray:
        """Blur (compression noise) and return float32."""
        return cv2.GaussianBlur(grey_small, (3, 3), 0).astype(np.float32)

    def gain(self, frame: np.ndarray) -> float:
        """The frame's global gain against the background: the median of their per-pixel
        ratio. A mover covers a minority of the pixels, so it does not move the median (a
        contrast stretch on the frame's own percentiles does: a white truck raises the 99th
        percentile and darkens the whole stretched picture); a cloud or auto exposure
        (``frame * 0.6``) does, and is divided out."""
        assert self.avg is not None
        bg, cur = self.avg[::2, ::2], frame[::2, ::2]
        valid = np.ones(bg.shape, bool) if self.ignore is None else self.ignore[::2, ::2] == 0
        keep = valid & (bg > 16.0)
        if np.count_nonzero(keep) < 0.5 * np.count_nonzero(valid):
            return 1.0  # a mostly dark view: too little light to measure a gain on
        return float(np.clip(np.median(cur[keep] / bg[keep]), 0.2, 5.0))

    def _warm_up(self, frame: np.ndarray, time_s: float) -> None:
        """Collect a warm-up frame; the last one makes the background their median."""
        if self._warm_from is None:
            self._warm_from = time_s
        self._warm.append(frame)
        self._warm_count += 1
        if (time_s - self._warm_from >= self.s.warmup_s
                and self._warm_count >= self.s.warmup_frames):
            self.avg = np.median(np.stack(self._warm), axis=0).astype(np.float32)
            self.prev = frame
            self._warm.clear()

    def detect(self, grey_small: np.ndarray, time_s: float) -> MotionResult:
        """Motion in one frame taken at ``time_s`` (seconds on any monotonic timeline)."""
        raw = self.prepare(grey_small)
        empty = np.zeros(raw.shape, np.uint8)
        if self.avg is None:  # warming up: this frame is learned, not judged
            self._warm_up(raw, time_s)
            return MotionResult(empty, [], 0.0, True)
        frame = np.clip(raw / self.gain(raw), 0, 255)
        delta = cv2.absdiff(frame, self.avg)
        thresh = (delta > self.s.threshold).astype(np.uint8) * 255
        if self.ignore is not None:
            thresh[self.ignore > 0] = 0
        changed = float(np.count_nonzero(thresh)) / self.valid_pixels
        if changed > self.s.relearn_fraction:  # lights, IR switch: learn the new scene
            self.reset()
            self._warm_up(raw, time_s)
            return MotionResult(empty, [], changed, True)
        prev, self.prev = self.prev, frame
        cv2.accumulateWeighted(frame, self.avg, self.s.frame_alpha)
        grown = cv2.dilate(thresh, self._kernel, iterations=2)
        moving = (cv2.absdiff(frame, prev if prev is not None else frame)
                  > self.s.threshold).astype(np.uint8)
        contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        kept = np.zeros_like(thresh)
        boxes: list[list[int]] = []
        still: list[Blob] = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            blob = np.zeros((h, w), np.uint8)
            cv2.drawContours(blob, [contour], -1, 255, thickness=cv2.FILLED,
                             offset=(-x, -y))
            inside = (blob > 0) & (thresh[y:y + h, x:x + w] > 0)
            area = int(np.count_nonzero(inside))  # changed pixels, not the dilated blob:
            if area < self.min_contour:           # a speck of noise grows to ~60 px
                continue
            if np.count_nonzero(moving[y:y + h, x:x + w][inside]) < \
                    self.s.ghost_fraction * area:
                # Differs from the background but not from the last sample: a ghost
                # (someone left after standing still) or a stationary object. Absorb it
                # into the background now instead of over ~1/alpha samples.
                # Its box is still returned: someone who just stopped is worth one look
                # by the people detector.
                region = self.avg[y:y + h, x:x + w]
                region[blob > 0] = frame[y:y + h, x:x + w][blob > 0]
                still.append(Blob(x, y, w, h, area))
                continue
            kept[y:y + h, x:x + w][inside] = 255
            boxes.append([x, y, w, h])
        blobs = [Blob(x, y, w, h, int(np.count_nonzero(kept[y:y + h, x:x + w])))
                 for x, y, w, h in merge_boxes(boxes, pad=max(2, self.size[1] // 20))]
        return MotionResult(kept, blobs, changed, False, still)


class FrameGap:
    """Tells a gap in the frames: the ingester reconnecting, a camera back from an outage.

    The background is then stale (the view may have changed, or the camera come back
    with another exposure), so the analyzer warms a new one up instead of reporting
    every change the gap hid as motion. A gap counts when it is longer than ``gap_s`` and
    than three usual intervals, so a camera sampled slowly is not re-warmed on every
    frame. The usual interval follows shorter intervals at once and longer ones slowly.
    """

    def __init__(self, gap_s: float) -> None:
        self.gap_s = gap_s
        self.last: float | None = None
        self.usual: float | None = None

    def stale(self, time_s: float) -> bool:
        last, self.last = self.last, time_s
        if last is None:
            return False
        gap = time_s - last
        usual = self.usual
        self.usual = gap if usual is None else max(1e-3, min(gap, 0.8 * usual + 0.2 * gap))
        return usual is not None and gap > self.gap_s and gap > 3 * usual


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


def union_boxes(boxes: list[Any], corners: bool = False) -> list[int] | None:
    """[x0, y0, x1, y1] around (x, y, w, h) boxes (or [x0, y0, x1, y1] ones if
    ``corners``); None when there is none."""
    rects = [b if corners else (b[0], b[1], b[0] + b[2], b[1] + b[3])
             for b in boxes if b is not None]
    if not rects:
        return None
    return [int(min(r[0] for r in rects)), int(min(r[1] for r in rects)),
            int(max(r[2] for r in rects)), int(max(r[3] for r in rects))]


def nearest_box(boxes: list[tuple[int, int, int, int]], centroid: tuple[float, float],
             small_per_px: float) -> tuple[int, int, int, int] | None:
    """The moving box (frame pixels) whose centre is nearest a track's centroid (small
    motion-frame pixels)."""
    if not boxes:
        return None
    cx, cy = centroid[0] / small_per_px, centroid[1] / small_per_px
    return min(boxes, key=lambda b: (b[0] + b[2] / 2 - cx) ** 2 + (b[1] + b[3] / 2 - cy) ** 2)


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
