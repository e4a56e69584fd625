"""Video detectors on real frames of person_room.mp4 (sampled at 2 fps, 384x216)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from contract.clue import Clue
from detectors.video import CameraAnalyzer
from detectors.video_config import CameraConfig, Line, Schedule, Zone
from offsite.cmd_video import sample_frames

ROOM = Path(__file__).resolve().parents[2] / "samples" / "video" / "person_room.mp4"
T0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)  # a Monday, 18:00 in Asia/Shanghai


@lru_cache(maxsize=1)
def room_frames() -> tuple[tuple[float, np.ndarray], ...]:
    """The first 40 s at 2 fps, small, so each test runs in well under a second."""
    out = []
    for pos, frame in sample_frames(ROOM, 2.0):
        if pos > 40:
            break
        out.append((pos, cv2.resize(frame, (384, 216), interpolation=cv2.INTER_AREA)))
    return tuple(out)


def config(**kw: object) -> CameraConfig:
    cfg = CameraConfig(camera_id="room", **kw)  # type: ignore[arg-type]
    cfg.evidence.enabled = False
    return cfg


def run(analyzer: CameraAnalyzer, frames: list[np.ndarray], start: float = 0.0,
        step: float = 0.5) -> list[Clue]:
    clues: list[Clue] = []
    for i, frame in enumerate(frames):
        clues += analyzer.process(frame, T0 + timedelta(seconds=start + i * step))
    return clues


def empty_frames() -> list[np.ndarray]:
    return [f for pos, f in room_frames() if pos < 5.0]  # nobody in the room yet


def test_motion_in_room_zone_and_nothing_in_empty_start() -> None:
    analyzer = CameraAnalyzer(config())
    clues = run(analyzer, [f for _, f in room_frames()])
    motion = [c for c in clues if c.rule == "zone/all/motion"]
    assert motion and motion[0].state == "open"
    assert motion[0].start >= T0 + timedelta(seconds=1.5)
    assert all(c.time >= T0 + timedelta(seconds=1.5) for c in clues)
    assert not [c for c in clues if c.kind in ("occlusion", "defocus", "shift")]
    closed = [c for c in motion + analyzer.flush()
              if c.rule == "zone/all/motion" and c.state == "closed"]
    assert closed and all(c.end is not None for c in closed)
    # one episode, one clue id: each opened episode is closed once, with the same id
    opened = [c.clue_id for c in motion if c.state == "open"]
    assert [c.clue_id for c in closed] == opened
    assert all(c.modality == "video" and c.subject == "room" for c in clues)


def learned(cfg: CameraConfig | None = None) -> tuple[CameraAnalyzer, list[np.ndarray]]:
    analyzer = CameraAnalyzer(cfg or config())
    frames = empty_frames()
    assert run(analyzer, frames[:6]) == []
    return analyzer, frames


@pytest.mark.parametrize("cover", ["black", "grey"])
def test_occlusion_opens_and_closes_when_view_returns(cover: str) -> None:
    analyzer, frames = learned()
    covered = np.zeros_like(frames[0]) if cover == "black" else np.full_like(frames[0], 128)
    clues = run(analyzer, [covered] * 4, start=3.0)
    clues += run(analyzer, frames[6:10], start=5.0)
    occl = [c for c in clues if c.kind == "occlusion"]
    assert [c.state for c in occl][0] == "open" and occl[-1].state == "closed"
    assert len({c.clue_id for c in occl}) == 1  # one episode
    assert not [c for c in clues if c.kind in ("motion", "defocus", "shift")]


def test_defocus_from_gaussian_blur() -> None:
    analyzer, frames = learned()
    blurred = [cv2.GaussianBlur(f, (0, 0), 3) for f in frames[6:10]]
    clues = run(analyzer, blurred, start=3.0)
    kinds = {c.kind for c in clues}
    assert "defocus" in kinds and "occlusion" not in kinds and "motion" not in kinds
    clues = run(analyzer, frames[6:10], start=5.0)
    assert [c.state for c in clues if c.kind == "defocus"] == ["closed"]


@pytest.mark.parametrize("how", ["shift", "zoom"])
def test_shift_when_camera_turned_or_zoomed(how: str) -> None:
    analyzer, frames = learned()
    h, w = frames[0].shape[:2]
    if how == "shift":
        moved = [np.roll(f, w // 8, axis=1) for f in frames[6:10]]
    else:
        moved = [cv2.resize(f[h // 8:-h // 8, w // 8:-w // 8], (w, h)) for f in frames[6:10]]
    clues = run(analyzer, moved, start=3.0)
    assert "shift" in {c.kind for c in clues}
    assert not [c for c in clues if c.kind == "motion"]


def test_shift_gate_skips_the_match_only_while_the_view_is_unchanged() -> None:
    analyzer, frames = learned()
    skipped = analyzer.tamper.matches_skipped
    assert run(analyzer, [frames[6]] * 6, start=3.0) == []
    assert analyzer.tamper.matches_skipped >= skipped + 4  # same picture: verdict holds
    # A slow pan, 1 px per sample: no step alone changes the picture enough for the gate,
    # but the gate compares with the last *matched* frame, so the pan adds up and is seen.
    pan = [np.roll(frames[6], k, axis=1) for k in range(1, 31)]  # up to 7.8 % of 384 px
    clues = run(analyzer, pan, start=6.0)
    shift = [c for c in clues if c.kind == "shift"]
    assert shift and shift[0].state == "open"
    assert shift[0].metrics["offset"] > analyzer.config.tamper.shift_fraction


def test_global_brightness_change_raises_nothing() -> None:
    analyzer, frames = learned()
    dim = [(f * 0.6).astype(np.uint8) for f in frames[6:10]]
    assert run(analyzer, dim, start=3.0) == []


def test_schedule_outside_active_hours_gives_no_clue() -> None:
    night = Schedule(hours=["22:00-06:00"])  # T0 is 18:00 local
    zone = Zone(name="room", points=[(0, 0), (1, 0), (1, 1), (0, 1)], schedule=night)
    cfg = config(zones=[zone], timezone="Asia/Shanghai")
    assert run(CameraAnalyzer(cfg), [f for _, f in room_frames()][:50]) == []
    assert night.active(T0 + timedelta(hours=5), cfg.tz)  # 23:00 local


def test_line_crossing_with_direction() -> None:
    line = Line(name="door", a=(0.5, 0.0), b=(0.5, 1.0), direction="right_to_left")
    cfg = config(lines=[line])
    cfg.tamper.enabled = False
    analyzer = CameraAnalyzer(cfg)
    base = np.full((216, 384, 3), 90, np.uint8)
    cv2.randu(base, 60, 120)  # texture (the first channel only: a dark view)
    frames = []
    for x in [20, 20, 20, 60, 100, 140, 180, 220, 260, 300, 300, 300]:
        f = base.copy()
        cv2.rectangle(f, (x, 80), (x + 30, 150), (250, 250, 250), -1)
        frames.append(f)
    clues = run(analyzer, frames)  # moves left to right on screen, a->b points down
    rules = {c.rule for c in clues}
    assert "line/door/right_to_left" in rules and "line/door/left_to_right" not in rules
    crossing = [c for c in clues if c.kind == "line_crossing"]
    assert crossing[0].state == "open" and crossing[-1].state == "closed"
    assert crossing[-1].end == crossing[0].start


def test_config_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "cam.yaml"
    path.write_text(
        "camera_id: gate\ntimezone: Asia/Shanghai\n"
        "zones:\n  - name: yard\n    points: [[10, 10], [300, 10], [300, 200]]\n"
        "    loitering_s: 30\n    schedule: {hours: ['20:00-06:00'], weekdays: [0, 1]}\n"
        "masks:\n  - {name: clock, points: [[0, 0], [0.3, 0], [0.3, 0.08], [0, 0.08]]}\n"
        "lines:\n  - {name: door, a: [0.5, 0], b: [0.5, 1], direction: left_to_right}\n"
        "tamper: {defocus_ratio: 0.3}\n", encoding="utf-8")
    cfg = CameraConfig.from_yaml(path)
    assert cfg.zones[0].pixels(384, 216)[1].tolist() == [300, 10]
    assert cfg.masks[0].pixels(384, 216)[1][0] == pytest.approx(0.3 * 383)
    assert cfg.tamper.defocus_ratio == 0.3 and cfg.lines[0].direction == "left_to_right"
