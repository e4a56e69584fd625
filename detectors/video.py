"""Video detectors for one camera: frames and timestamps in, clues out.

``CameraAnalyzer(config).process(frame_bgr, time)`` is pure CPU work with state (background,
tamper reference, tracks, open episodes) and no clock reads, so the stream layer can run
it in a thread pool and the CLI can run it on a file's own timeline.

Rules (``Clue.rule``) and their episodes, one clue per episode with open/update/closed:

* ``zone/<zone>/motion`` and ``zone/<zone>/person``: activity in a zone for ``inertia``
  consecutive samples opens; ``clear_s`` without it closes; the episode's start and end
  are its first and last active samples. Person detection runs only on
  moving regions, on regions that just stopped moving and on the boxes of people already
  seen (a person who stands still stops producing motion but is still there).
* ``zone/<zone>/loitering``: motion or person in the zone without a ``clear_s`` gap for
  ``loitering_s``; closes with the activity.
* ``line/<line>/<direction>``: a tracked mover crossed the tripwire. It is an instant, so
  the clue opens at the crossing and closes at once (end = start) when its clip is done.
* ``tamper/occlusion|defocus|shift``: see ``detectors.video_tamper``. While any tamper
  condition holds, motion is not judged; the background is learned again after it, as
  at the start and after a gap in the frames (``detectors.video_motion``).

Zones and lines with a schedule are judged only inside it; an episode open when the
schedule ends is closed. Evidence (snapshot on every clue, the clip once its post-roll is
in) is built only when ``config.evidence.enabled``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import cv2
import numpy as np

from contract.clue import Clue, EvidenceRef
from detectors.video_config import CameraConfig, polygon_mask
from detectors.video_evidence import ClipRecorder, FrameRing, Overlay, snapshot
from detectors.video_motion import (
    Blob,
    CentroidTracker,
    FrameGap,
    MotionDetector,
    MotionResult,
    crossing,
    nearest_box,
    union_boxes,
)
from detectors.video_person import Person, PersonDetector, hog_available
from detectors.video_tamper import TamperDetector

DETECTOR = "offsite.video"
DETECTOR_VERSION = "0.1.0"
CONFIDENCE = {"motion": 0.5, "loitering": 0.7, "line_crossing": 0.6, "occlusion": 0.9,
              "defocus": 0.8, "shift": 0.8}


@dataclass
class Episode:
    """One open episode of a rule; emits clues and owns the clip being recorded."""

    rule: str
    kind: str
    start: datetime
    last_seen: datetime
    last_emit: datetime
    polygon: np.ndarray | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    confidence: float = 0.5
    clip: ClipRecorder | None = None
    bbox: list[int] | None = None  # union of the regions seen, [x0, y0, x1, y1] pixels

    def grow(self, box: list[int] | None) -> None:
        if box is None:
            return
        if self.bbox is None:
            self.bbox = list(box)
        else:
            self.bbox = [min(self.bbox[0], box[0]), min(self.bbox[1], box[1]),
                         max(self.bbox[2], box[2]), max(self.bbox[3], box[3])]


@dataclass
class _Run:
    """Consecutive active samples of a (zone, kind), for inertia and clear time."""

    count: int = 0
    first: datetime | None = None
    last: datetime | None = None


class CameraAnalyzer:
    """All video detectors for one camera (see the module docstring)."""

    def __init__(self, config: CameraConfig, person_detector: PersonDetector | None = None
                 ) -> None:
        self.config = config
        self.tz = config.tz
        wants_people = config.person_detection and any(
            "person" in z.objects for z in config.zones)
        self.people = person_detector
        if self.people is None and wants_people and hog_available():
            self.people = PersonDetector()
        self.tamper = TamperDetector(config.tamper)
        self.tracker = CentroidTracker(0.0, config.motion.track_max_missing)
        self.ring = FrameRing(config.evidence.pre_roll_s, config.evidence.max_height)
        self.episodes: dict[str, Episode] = {}
        self.runs: dict[str, _Run] = {}
        self.tamper_counts: dict[str, tuple[int, int]] = {}
        self.last_people: dict[str, list[Person]] = {}
        self._size: tuple[int, int] | None = None
        self._last_time: datetime | None = None
        self.gap = FrameGap(config.motion.rewarm_gap_s)

    # -- geometry --------------------------------------------------------------------
    def _setup(self, width: int, height: int) -> None:
        """Rasterise zones, masks and lines for this frame size (again if it changes)."""
        self._size = (width, height)
        mh = self.config.motion.frame_height
        mw = max(1, round(width * mh / height))
        self.small = (mw, mh)
        th = self.config.tamper.frame_height
        self.tamper_size = (max(1, round(width * th / height)), th)
        ignore = np.zeros((mh, mw), np.uint8)
        for mask in self.config.masks:
            ignore |= polygon_mask(mask.pixels(width, height), mw, mh, (width, height))
        self.motion = MotionDetector(self.config.motion, self.small,
                                     ignore if ignore.any() else None)
        self.zone_px = {z.name: z.pixels(width, height) for z in self.config.zones}
        self.zone_masks = {n: polygon_mask(p, mw, mh, (width, height))
                           for n, p in self.zone_px.items()}
        self.line_px = {ln.name: ln.pixels(width, height) * (mw / width)
                        for ln in self.config.lines}
        self.tracker = CentroidTracker(self.config.motion.track_max_distance * mw,
                                       self.config.motion.track_max_missing)

    # -- main entry ------------------------------------------------------------------
    def process(self, frame_bgr: np.ndarray, time: datetime) -> list[Clue]:
        """Analyse one frame taken at ``time`` (timezone-aware); return new clue states."""
        if time.tzinfo is None:
            raise ValueError("time must be timezone-aware")
        if frame_bgr.ndim == 2:
            frame_bgr = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
        height, width = frame_bgr.shape[:2]
        if self._size != (width, height):
            self._setup(width, height)
        self._last_time = time
        if self.gap.stale(time.timestamp()):  # a reconnect: the background is stale
            self.motion.reset()
            self.tracker.clear()
        small_colour = self.ring.push(time, frame_bgr) if self.config.evidence.enabled else None
        grey = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        out: list[Clue] = []
        tampered = self._tamper(grey, frame_bgr, time, out)
        if tampered:
            self.motion.reset()
            self.tracker.clear()
            motion = MotionResult(np.zeros(self.small[::-1], np.uint8), [], 1.0, True)
        else:
            motion = self.motion.detect(cv2.resize(grey, self.small,
                                                   interpolation=cv2.INTER_AREA),
                                        time.timestamp())
        boxes = self._boxes(motion)
        people = self._people(frame_bgr, motion, boxes)
        self._zones(frame_bgr, time, motion, boxes, people, out)
        if not motion.relearned:
            self._lines(frame_bgr, time, motion, boxes, out)
        self._clips(time, small_colour, out)
        return out

    def flush(self, time: datetime | None = None) -> list[Clue]:
        """Close every open episode (end of a file or shutdown of a camera), each at the
        last sample that showed its activity: a file ending ``clear_s`` after the last
        car does not stretch the episode to its end."""
        moment = time or self._last_time
        if moment is None:
            return []
        out: list[Clue] = []
        for key in list(self.episodes):
            self._close(key, min(moment, self.episodes[key].last_seen), None, out)
        return out

    # -- parts -----------------------------------------------------------------------
    def _boxes(self, motion: MotionResult) -> list[tuple[int, int, int, int]]:
        return self._scale(motion.blobs)

    def _scale(self, blobs: list[Blob]) -> list[tuple[int, int, int, int]]:
        """Blobs of the small motion frame as (x, y, w, h) boxes of the frame."""
        assert self._size is not None
        sx = self._size[0] / self.small[0]
        sy = self._size[1] / self.small[1]
        return [(int(b.x * sx), int(b.y * sy), int(b.w * sx), int(b.h * sy)) for b in blobs]

    def _people(self, frame: np.ndarray, motion: MotionResult,
                boxes: list[tuple[int, int, int, int]]) -> list[Person]:
        if self.people is None or motion.relearned:
            return []
        regions = list(boxes) + self._scale(motion.still)
        for seen in self.last_people.values():
            regions += [(p.x, p.y, p.w, p.h) for p in seen]
        return self.people.detect(frame, regions) if regions else []

    def _zones(self, frame: np.ndarray, time: datetime, motion: MotionResult,
               boxes: list[tuple[int, int, int, int]], people: list[Person],
               out: list[Clue]) -> None:
        total = float(self.small[0] * self.small[1])
        for zone in self.config.zones:
            poly = self.zone_px[zone.name]
            armed = zone.schedule is None or zone.schedule.active(time, self.tz)
            area = float(np.count_nonzero(motion.mask & self.zone_masks[zone.name])) / total
            inside = [p for p in people
                      if cv2.pointPolygonTest(poly.astype(np.float32), p.foot, False) >= 0]
            self.last_people[zone.name] = inside if armed else []
            active = {"motion": area >= zone.min_area, "person": bool(inside)}
            active["presence"] = any(active[k] for k in zone.objects)
            overlay = Overlay([poly], boxes, [(p.x, p.y, p.w, p.h) for p in inside])
            moving = [b for b, blob in zip(boxes, motion.blobs, strict=True)
                      if self.zone_masks[zone.name][blob.y:blob.y + blob.h,
                                                    blob.x:blob.x + blob.w].any()]
            region = {"motion": union_boxes(moving),
                      "person": union_boxes([(p.x, p.y, p.w, p.h) for p in inside])}
            region["presence"] = union_boxes([r for r in region.values() if r is not None],
                                        corners=True)
            metrics: dict[str, Any] = {"area": round(area, 4), "people": len(inside)}
            confidence = max((p.confidence for p in inside), default=CONFIDENCE["motion"])
            for kind in [*zone.objects, "presence"]:
                key = f"zone/{zone.name}/{kind}"
                run = self.runs.setdefault(key, _Run())
                if not armed:
                    self.runs[key] = _Run()
                    self._close(key, run.last or time, frame, out, overlay)
                    continue
                gap = (time - run.last).total_seconds() if run.last else None
                over = None if gap is None else gap - zone.clear_s  # 1 us: float times
                if over is not None and (over > 1e-6 or (over > -1e-6 and not active[kind])):
                    # clear_s without activity: the episode ended at its last active
                    # sample, also when this sample (after missing frames) is active
                    # (when the frames come every clear_s, active ones follow each other)
                    ends = f"zone/{zone.name}/loitering" if kind == "presence" else key
                    self._close(ends, run.last or time, frame, out, overlay)
                    run.first, run.count = None, 0
                if active[kind]:
                    run.first = run.first or time
                    run.count += 1
                    run.last = time
                else:
                    run.count = 0  # inertia counts consecutive samples
                if kind == "presence":
                    self._loitering(zone, run, time, frame, overlay, metrics, out,
                                    region["presence"])
                    continue
                if key in self.episodes:
                    if active[kind]:
                        self.episodes[key].grow(region[kind])
                        self._update(key, time, frame, overlay, metrics, confidence, out)
                elif active[kind] and run.count >= zone.inertia and run.first:
                    conf = confidence if kind == "person" else CONFIDENCE["motion"]
                    self._open(key, kind, run.first, time, frame, overlay, metrics, conf,
                               poly, out, region[kind])

    def _loitering(self, zone: Any, run: _Run, time: datetime, frame: np.ndarray,
                   overlay: Overlay, metrics: dict[str, Any], out: list[Clue],
                   region: list[int] | None = None) -> None:
        if zone.loitering_s is None:
            return
        key = f"zone/{zone.name}/loitering"
        if run.first is None:
            if key in self.episodes and run.last:
                self._close(key, run.last, frame, out, overlay)
            return
        if key not in self.episodes and run.last == time and \
                (time - run.first).total_seconds() >= zone.loitering_s:
            self._open(key, "loitering", run.first, time, frame, overlay,
                       {**metrics, "loitering_s": zone.loitering_s},
                       CONFIDENCE["loitering"], self.zone_px[zone.name], out, region)
        elif key in self.episodes and run.last == time:
            self.episodes[key].grow(region)
            dwell = round((time - self.episodes[key].start).total_seconds(), 1)
            self._update(key, time, frame, overlay, {**metrics, "dwell_s": dwell},
                         CONFIDENCE["loitering"], out)

    def _lines(self, frame: np.ndarray, time: datetime, motion: MotionResult,
               boxes: list[tuple[int, int, int, int]], out: list[Clue]) -> None:
        moved = self.tracker.update([b.centroid for b in motion.blobs])
        if not self.config.lines:
            return
        mw, mh = self.small
        for line in self.config.lines:
            if line.schedule is not None and not line.schedule.active(time, self.tz):
                continue
            a, b = self.line_px[line.name]
            for track in moved:
                if track.previous is None:
                    continue
                way = crossing(a, b, track.previous, track.centroid)
                if way is None or track.last_crossing.get(line.name) == way:
                    continue
                track.last_crossing[line.name] = way
                if line.direction not in ("any", way):
                    continue
                key = f"line/{line.name}/{way}"
                if key in self.episodes:  # a second crossing before the first's clip ends
                    self._close(key, self.episodes[key].start, frame, out)
                poly = np.array([a, b]) * (self._size[0] / mw if self._size else 1.0)
                metrics = {"track": track.track_id, "direction": way,
                           "from": [round(track.previous[0] / mw, 3),
                                    round(track.previous[1] / mh, 3)],
                           "to": [round(track.centroid[0] / mw, 3),
                                  round(track.centroid[1] / mh, 3)]}
                self._open(key, "line_crossing", time, time, frame, Overlay([poly], boxes, []),
                           metrics, CONFIDENCE["line_crossing"], poly, out,
                           union_boxes([nearest_box(boxes, track.centroid, mw / self._size[0])
                                   if self._size else None]))
                if self.episodes[key].clip is None:  # no clip to wait for
                    self._close(key, time, None, out)

    def _tamper(self, grey: np.ndarray, frame: np.ndarray, time: datetime,
                out: list[Clue]) -> bool:
        """Debounce the raw tamper conditions into episodes; True while any holds."""
        if not self.config.tamper.enabled:
            return False
        s = self.config.tamper
        reading = self.tamper.update(cv2.resize(grey, self.tamper_size,
                                                interpolation=cv2.INTER_AREA))
        for kind, raw in reading.conditions.items():
            on, off = self.tamper_counts.get(kind, (0, 0))
            on, off = (on + 1, 0) if raw else (0, off + 1)
            self.tamper_counts[kind] = (on, off)
            key = f"tamper/{kind}"
            overlay = Overlay([], [], [], label=kind)
            if key in self.episodes:
                if raw:
                    self.episodes[key].last_seen = time
                    self._update(key, time, frame, overlay, reading.metrics,
                                 CONFIDENCE[kind], out)
                elif off >= s.clear_frames:
                    self._close(key, time, frame, out, overlay)
            elif on >= s.confirm_frames:
                self._open(key, kind, time, time, frame, overlay, reading.metrics,
                           CONFIDENCE[kind], None, out)
        return any(reading.conditions.values())

    # -- episodes and evidence -------------------------------------------------------
    def _open(self, key: str, kind: str, start: datetime, time: datetime,
              frame: np.ndarray, overlay: Overlay, metrics: dict[str, Any],
              confidence: float, polygon: np.ndarray | None, out: list[Clue],
              bbox: list[int] | None = None) -> None:
        ep = Episode(key, kind, start, time, time, polygon, dict(metrics), confidence)
        ep.grow(bbox)
        self.episodes[key] = ep
        if self.config.evidence.enabled:
            until = time + timedelta(seconds=self.config.evidence.post_roll_s)
            ep.clip = ClipRecorder(self.ring, until, self._name(ep, "clip", ".mp4"))
        out.append(self._clue(ep, "open", time, frame, overlay))

    def _update(self, key: str, time: datetime, frame: np.ndarray, overlay: Overlay,
                metrics: dict[str, Any], confidence: float, out: list[Clue]) -> None:
        ep = self.episodes[key]
        ep.last_seen = time
        ep.confidence = max(ep.confidence, confidence)
        for name, value in metrics.items():
            old = ep.metrics.get(name)
            ep.metrics[name] = max(old, value) if isinstance(old, (int, float)) and \
                isinstance(value, (int, float)) else value
        if (time - ep.last_emit).total_seconds() >= self.config.update_every_s:
            out.append(self._clue(ep, "update", time, frame, overlay))

    def _close(self, key: str, end: datetime, frame: np.ndarray | None, out: list[Clue],
               overlay: Overlay | None = None) -> None:
        ep = self.episodes.pop(key, None)
        if ep is None:
            return
        extra = [ep.clip.finish()] if ep.clip is not None and ep.clip.frames else []
        ep.clip = None
        clue = self._clue(ep, "closed", max(end, ep.start), frame, overlay, extra)
        clue.end = max(end, ep.start)
        out.append(clue)

    def _clips(self, time: datetime, small: np.ndarray | None, out: list[Clue]) -> None:
        """Feed clips; a finished clip goes out on an update (lines: on the close)."""
        for key, ep in list(self.episodes.items()):
            if ep.clip is None or small is None:
                continue
            ep.clip.add(time, small)
            if not ep.clip.due(time):
                continue
            if ep.kind == "line_crossing":
                self._close(key, ep.start, None, out)
                continue
            clip = ep.clip.finish()
            ep.clip = None
            out.append(self._clue(ep, "update", time, None, None, [clip]))

    def _clue(self, ep: Episode, state: str, time: datetime, frame: np.ndarray | None,
              overlay: Overlay | None, extra: list[EvidenceRef] | None = None) -> Clue:
        ep.last_emit = time
        evidence = list(extra or [])
        if frame is not None and overlay is not None and self.config.evidence.enabled:
            ev = self.config.evidence
            evidence.insert(0, snapshot(frame, overlay, self._name(ep, state, ".jpg"),
                                        ev.max_height * 2, ev.jpeg_quality))
        duration = round((max(time, ep.last_seen) - ep.start).total_seconds(), 1)
        bbox = ep.bbox
        if bbox is not None and self._size is not None:  # person boxes can overhang
            w, h = self._size
            bbox = [min(max(bbox[0], 0), w), min(max(bbox[1], 0), h),
                    min(max(bbox[2], 0), w), min(max(bbox[3], 0), h)]
        return Clue(
            modality="video", kind=ep.kind, rule=ep.rule, subject=self.config.camera_id,
            state=state, start=ep.start, time=max(time, ep.start),  # type: ignore[arg-type]
            confidence=round(min(1.0, ep.confidence), 3),
            metrics={**ep.metrics, "duration_s": duration, "bbox": bbox},
            detector=DETECTOR,
            detector_version=DETECTOR_VERSION, summary=self._summary(ep, state),
            params={"zone_polygon": ep.polygon.round(1).tolist()}
            if ep.polygon is not None else {},
            evidence=evidence)

    def _summary(self, ep: Episode, state: str) -> str:
        what = ep.rule.split("/")
        return f"{self.config.camera_id}: {ep.kind} ({'/'.join(what[1:])}) {state}"

    def _name(self, ep: Episode, tag: str, suffix: str) -> str:
        rule = re.sub(r"[^A-Za-z0-9_.-]+", "-", ep.rule)
        stamp = ep.start.strftime("%Y%m%dT%H%M%S")
        return f"{self.config.camera_id}_{rule}_{stamp}_{tag}{suffix}"

