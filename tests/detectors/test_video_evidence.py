"""Evidence (snapshot, clip, sha256) and the `offsite video analyze` command."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from detectors.video import CameraAnalyzer
from detectors.video_config import CameraConfig
from detectors.video_evidence import Overlay, encode_mp4, snapshot
from offsite.cli import app
from offsite.cmd_video import sample_frames

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "video"
T0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)


def test_snapshot_and_clip_are_hashed_media() -> None:
    frame = np.full((216, 384, 3), 80, np.uint8)
    poly = np.array([[10, 10], [300, 10], [300, 200]], float)
    ref = snapshot(frame, Overlay([poly], [(50, 50, 40, 80)], []), "s.jpg")
    assert ref.media_type == "image/jpeg" and ref.content[:2] == b"\xff\xd8"
    assert ref.sha256 == hashlib.sha256(ref.content).hexdigest()
    data = encode_mp4([frame] * 6, 2.0)
    assert data[4:8] == b"ftyp"


def test_clues_on_person_room_carry_snapshot_and_clip() -> None:
    cfg = CameraConfig(camera_id="room")
    cfg.evidence.post_roll_s = 2.0
    analyzer = CameraAnalyzer(cfg)
    clues = []
    for pos, frame in sample_frames(SAMPLES / "person_room.mp4", 2.0):
        if pos > 12:
            break
        small = cv2.resize(frame, (384, 216), interpolation=cv2.INTER_AREA)
        clues += analyzer.process(small, T0 + timedelta(seconds=pos))
    clues += analyzer.flush()
    motion = [c for c in clues if c.rule == "zone/all/motion"]
    types = [e.media_type for c in motion for e in c.evidence]
    assert "image/jpeg" in types and "video/mp4" in types
    for clue in motion:
        for ev in clue.evidence:
            assert ev.sha256 == hashlib.sha256(ev.content).hexdigest()
    clip = next(e for c in motion for e in c.evidence if e.media_type == "video/mp4")
    assert clip.content[4:8] == b"ftyp"


def test_cli_analyze_writes_jsonl_without_media(tmp_path: Path) -> None:
    out, ev = tmp_path / "clues.jsonl", tmp_path / "evidence"
    result = CliRunner().invoke(app, [
        "video", "analyze", str(SAMPLES / "logo_480p.mp4"), "--out", str(out),
        "--evidence-dir", str(ev), "--fps", "4", "--start", "2024-03-04T18:00:00+08:00"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records, "the logo video moves: expect clues"
    for rec in records:
        assert rec["camera"] == "logo_480p" and rec["start_s"] >= 0
        assert rec["start"] >= "2024-03-04T18:00:00+08:00"
        assert rec["evidence"], "every clue has at least a snapshot"
        for item in rec["evidence"]:
            assert "content" not in item
            data = Path(item["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == item["sha256"]
