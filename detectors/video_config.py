"""Camera configuration for the video detectors, loadable from YAML.

Coordinates may be normalised (0..1, independent of the stream's resolution, which can
change when a camera is reconfigured) or pixels of the *original* frame; a polygon whose
coordinates are all within [0, 1] is taken as normalised unless ``normalized`` says
otherwise. Everything is rasterised once per frame size (see ``polygon_mask``).
"""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from detectors.plugin import DetectorConfig

Point = tuple[float, float]


class Schedule(BaseModel):
    """When a rule is armed, in the camera's local time (after-hours rules).

    ``hours`` are "HH:MM-HH:MM" windows; a window whose end is before its start runs over
    midnight ("22:00-06:00"). ``weekdays`` are 0=Monday .. 6=Sunday; the weekday of a
    window running over midnight is the day it started. Empty lists mean "always".
    """

    model_config = ConfigDict(extra="forbid")

    hours: list[str] = Field(default_factory=list)
    weekdays: list[int] = Field(default_factory=list)

    @field_validator("hours")
    @classmethod
    def _check_hours(cls, value: list[str]) -> list[str]:
        for window in value:
            _parse_window(window)
        return value

    def active(self, moment: datetime, tz: ZoneInfo) -> bool:
        local = moment.astimezone(tz)
        if not self.hours:
            return not self.weekdays or local.weekday() in self.weekdays
        now = local.time()
        for window in self.hours:
            start, end = _parse_window(window)
            if start <= end:
                inside, day = start <= now < end, local.weekday()
            elif now >= start:
                inside, day = True, local.weekday()
            else:
                inside, day = now < end, (local.weekday() - 1) % 7
            if inside and (not self.weekdays or day in self.weekdays):
                return True
        return False


def _parse_window(window: str) -> tuple[time, time]:
    try:
        start, end = (time.fromisoformat(part.strip()) for part in window.split("-"))
    except ValueError as exc:
        raise ValueError(f"hours window must be 'HH:MM-HH:MM', got {window!r}") from exc
    return start, end


class Polygon(BaseModel):
    """A polygon, normalised or in pixels (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    points: list[Point] = Field(min_length=3)
    normalized: bool | None = None

    def pixels(self, width: int, height: int) -> np.ndarray:
        return _to_pixels(self.points, self.normalized, width, height)


class Zone(Polygon):
    """An area watched for motion and people.

    ``min_area`` is the least moving area inside the zone, as a fraction of the frame, that
    counts as activity; ``inertia`` the consecutive active frames needed to open a clue
    (Frigate's name: one flickering frame is not an event); ``clear_s`` the quiet time that
    ends it; ``loitering_s`` the continuous activity that raises a loitering clue.
    """

    objects: list[Literal["motion", "person"]] = Field(default_factory=lambda: ["motion"])
    min_area: float = 0.002
    inertia: int = Field(default=2, ge=1)
    clear_s: float = 4.0
    loitering_s: float | None = None
    schedule: Schedule | None = None


class Line(BaseModel):
    """A tripwire from ``a`` to ``b``. Sides are as seen standing on ``a`` facing ``b``:
    ``left_to_right`` means a track moved from the left side to the right side."""

    model_config = ConfigDict(extra="forbid")

    name: str
    a: Point
    b: Point
    normalized: bool | None = None
    direction: Literal["left_to_right", "right_to_left", "any"] = "any"
    schedule: Schedule | None = None

    def pixels(self, width: int, height: int) -> np.ndarray:
        return _to_pixels([self.a, self.b], self.normalized, width, height)


class MotionSettings(BaseModel):
    """Frigate-like motion settings; areas are fractions of the frame.

    ``warmup_s`` (and at least ``warmup_frames``) of frames learn the background before
    motion is judged: at the start of a stream, after tamper, after a relearn and after a
    gap in the frames longer than ``rewarm_gap_s`` (a reconnect: the ingester sends no
    frames while it reconnects, and the view may have changed meanwhile).
    """

    model_config = ConfigDict(extra="forbid")

    frame_height: int = Field(default=144, ge=48, le=360)
    threshold: int = Field(default=30, ge=1, le=255)
    contour_area: float = 0.0015
    frame_alpha: float = Field(default=0.05, gt=0, le=1)
    ghost_fraction: float = Field(default=0.03, ge=0, le=1)
    relearn_fraction: float = Field(default=0.5, gt=0, le=1)
    warmup_s: float = Field(default=1.0, ge=0)
    warmup_frames: int = Field(default=3, ge=1)
    rewarm_gap_s: float = Field(default=2.0, gt=0)
    track_max_distance: float = 0.25
    track_max_missing: int = 2


class TamperSettings(BaseModel):
    """Tamper thresholds. Each condition must hold ``confirm_frames`` samples in a row to
    open and be absent ``clear_frames`` samples in a row to close."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    learn_frames: int = Field(default=4, ge=1)
    dark_level: float = 20.0
    flat_std: float = 4.0
    occluded_fraction: float = 0.8
    defocus_ratio: float = Field(default=0.4, gt=0, lt=1)
    shift_fraction: float = 0.06
    scale_change: float = 0.12
    min_inliers: int = 12
    refresh_frames: int = Field(default=240, ge=1)
    frame_height: int = Field(default=180, ge=96, le=720)
    confirm_frames: int = Field(default=2, ge=1)
    clear_frames: int = Field(default=2, ge=1)


class EvidenceSettings(BaseModel):
    """Snapshot and clip settings; frames are kept at most ``max_height`` px high."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    pre_roll_s: float = 4.0
    post_roll_s: float = 4.0
    max_height: int = 360
    jpeg_quality: int = 85


class CameraConfig(DetectorConfig):
    """One camera: zones, masks, lines, thresholds, schedules and the local time zone.

    The plug-in config of the video detector (``type: video``, optional in a camera's YAML).
    """

    type: Literal["video"] = "video"
    camera_id: str = "camera"
    timezone: str = "UTC"
    zones: list[Zone] = Field(
        default_factory=lambda: [Zone(name="all", points=[(0, 0), (1, 0), (1, 1), (0, 1)])])
    masks: list[Polygon] = Field(default_factory=list)
    lines: list[Line] = Field(default_factory=list)
    motion: MotionSettings = Field(default_factory=MotionSettings)
    tamper: TamperSettings = Field(default_factory=TamperSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    person_detection: bool = True
    update_every_s: float = 30.0

    @field_validator("timezone")
    @classmethod
    def _check_tz(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_yaml(cls, path: str | Path) -> CameraConfig:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return cls.model_validate(data)


def _to_pixels(points: list[Point], normalized: bool | None, width: int,
               height: int) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if normalized is None:
        normalized = bool(np.all((arr >= 0) & (arr <= 1)))
    if normalized:
        arr = arr * np.array([width - 1, height - 1])
    return arr


def polygon_mask(polygon: np.ndarray, width: int, height: int,
                 source_size: tuple[int, int] | None = None) -> np.ndarray:
    """Rasterise a polygon (pixels of ``source_size`` = (w, h)) at ``width`` x ``height``."""
    pts = polygon.copy()
    if source_size is not None:
        pts = pts * np.array([width / source_size[0], height / source_size[1]])
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255)
    return mask
