"""The `offsite video analyze` contract (issue 5, item 4) on real footage and on clips
made with ffmpeg filters at known times (item 5)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from detectors.video_config import MotionSettings
from detectors.video_person import hog_available
from offsite.cli import app

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "video"
KEYS = {"kind", "start_s", "end_s", "zone", "score", "bbox", "evidence"}
KINDS = {"motion", "loitering", "line_crossing", "person", "tamper.occlusion",
         "tamper.defocus", "tamper.shift", "signal_loss"}
TAMPER = {"tamper.occlusion": (8, 14), "tamper.defocus": (20, 26), "tamper.shift": (32, 38)}
LABELS = yaml.safe_load((Path(__file__).parent / "data" / "video_labels.yaml").read_text(
    encoding="utf-8"))["clips"]
ROOM_QUIET = [tuple(q) for q in LABELS["person_room.mp4"]["quiet"]]


def need_ffmpeg() -> None:
    """ffmpeg is installed by `make test` (scripts/install-system-deps.sh): missing, fail."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed: run `make sysdeps` (apt-get install ffmpeg)",
                    pytrace=False)


def analyze(video: Path, tmp_path: Path, *args: str) -> list[dict]:
    out = tmp_path / f"{video.stem}.jsonl"
    result = CliRunner().invoke(app, ["video", "analyze", str(video), "--out", str(out),
                                      *args])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for rec in records:
        assert KEYS <= rec.keys() and rec["kind"] in KINDS
        assert 0 <= rec["start_s"] <= rec["end_s"]
        assert 0 <= rec["score"] <= 1
        assert rec["bbox"] is None or (len(rec["bbox"]) == 4 and
                                       rec["bbox"][0] <= rec["bbox"][2] and
                                       rec["bbox"][1] <= rec["bbox"][3])
    return records


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "camera.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tamper_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """44 s of person_room at 384x216, 10 fps: lens covered (filled black box) 8-14 s,
    defocused (Gaussian blur) 20-26 s, camera turned (crop window moved by 48 px, 12.5 %
    of the width) 32-38 s; people walk through the rest of the time."""
    need_ffmpeg()
    path = tmp_path_factory.mktemp("clips") / "tamper.mp4"
    filters = ",".join([
        "fps=10", "scale=480:270",
        "crop=384:216:'if(between(t,32,38),0,48)':27",
        "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='between(t,8,14)'",
        "gblur=sigma=4:enable='between(t,20,26)'"])
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-t", "44",
                    "-i", str(SAMPLES / "person_room.mp4"), "-vf", filters, "-c:v",
                    "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
                   check=True, timeout=60)
    return path


def test_each_tamper_kind_in_its_interval_and_none_elsewhere(tamper_clip: Path,
                                                             tmp_path: Path) -> None:
    records = analyze(tamper_clip, tmp_path)  # no --config: tamper + full-frame motion
    tamper = [r for r in records if r["kind"].startswith("tamper.")]
    assert sorted(r["kind"] for r in tamper) == sorted(TAMPER), tamper
    for rec in tamper:
        a, b = TAMPER[rec["kind"]]
        # confirm_frames = clear_frames = 2 samples at 2 fps: up to ~1.5 s of latency
        assert a <= rec["start_s"] <= a + 1.5, rec
        assert b <= rec["end_s"] <= b + 1.5, rec
        assert rec["zone"] is None and rec["bbox"] is None and rec["evidence"] == []
    motion = [r for r in records if r["kind"] == "motion"]
    assert motion and {r["zone"] for r in motion} == {"all"}
    for rec in motion:  # motion is not judged while the view is tampered with
        for a, b in TAMPER.values():
            assert rec["end_s"] < a + 1.0 or rec["start_s"] > b, rec


def test_evidence_lists_files_written(tamper_clip: Path, tmp_path: Path) -> None:
    ev = tmp_path / "evidence"
    records = analyze(tamper_clip, tmp_path, "--evidence-dir", str(ev))
    occlusion = next(r for r in records if r["kind"] == "tamper.occlusion")
    types = {f["media_type"] for f in occlusion["evidence"]}
    assert types == {"image/jpeg", "video/mp4"}
    for rec in records:
        for item in rec["evidence"]:
            data = Path(item["path"]).read_bytes()
            assert Path(item["path"]).parent == ev
            assert hashlib.sha256(data).hexdigest() == item["sha256"]


def test_road_foliage_masked_trees_raise_nothing(tmp_path: Path) -> None:
    """Trees sway beside a busy road (320x240). With a low pixel threshold (the default
    30 already ignores this foliage) the trees zone raises motion without the mask and
    nothing with it; cars on the road still raise motion."""
    zones = ("camera_id: road\nmotion: {threshold: 15}\nzones:\n"
             "  - {name: trees, points: [[0, 0], [190, 0], [110, 55], [0, 105]]}\n"
             "  - {name: road, points: [[130, 60], [210, 0], [275, 0], [265, 240],"
             " [20, 240]]}\n")
    mask = "masks:\n  - {name: foliage, points: [[0, 0], [205, 0], [120, 62], [0, 118]]}\n"
    clip = SAMPLES / "road_foliage.avi"
    bare = analyze(clip, tmp_path, "--config", str(write_yaml(tmp_path, zones)))
    assert [r for r in bare if r["zone"] == "trees"], "trees move: the mask must matter"
    masked = analyze(clip, tmp_path, "--config", str(write_yaml(tmp_path, zones + mask)))
    assert not [r for r in masked if r["zone"] == "trees"]
    road = [r for r in masked if r["zone"] == "road"]
    assert road and all(r["kind"] == "motion" for r in road)
    assert not [r for r in masked if r["kind"].startswith("tamper.")]


def test_person_clues_when_people_pass_in_person_room(tmp_path: Path) -> None:
    assert hog_available(), "this OpenCV has no HOGDescriptor (pyproject pins OpenCV < 5)"
    cfg = write_yaml(tmp_path, "camera_id: room\nzones:\n  - {name: room, points: "
                     "[[0, 0], [1, 0], [1, 1], [0, 1]], objects: [motion, person]}\n")
    records = analyze(SAMPLES / "person_room.mp4", tmp_path, "--config", str(cfg))
    people = [r for r in records if r["kind"] == "person"]
    motion = [r for r in records if r["kind"] == "motion"]
    assert len(people) >= 3, records  # people pass several times in 139 s
    assert all(r["start_s"] >= 5.0 for r in records)  # the room is empty at first
    for rec in people:
        assert rec["zone"] == "room" and rec["score"] >= 0.5
        x0, y0, x1, y1 = rec["bbox"]
        assert 0 <= x0 < x1 <= 768 and 0 <= y0 < y1 <= 432
        assert (y1 - y0) > (x1 - x0)  # upright people
        # people are seen while someone is in the room (hand labels), never when empty
        assert not [q for q in ROOM_QUIET if rec["start_s"] < q[1] and rec["end_s"] > q[0]]
    assert motion
    assert not [r for r in records if r["kind"].startswith("tamper.")]


def test_default_is_full_frame_motion_zone_and_tamper(tmp_path: Path) -> None:
    """The logo grows in during the first second, while the background is still being
    learned (no clue may come from that); then the text slides in. With the default
    config motion goes to the full-frame zone ``all``."""
    records = analyze(SAMPLES / "logo_480p.mp4", tmp_path, "--fps", "4")
    assert records
    warmup = MotionSettings().warmup_s
    for rec in records:
        assert rec["end_s"] <= 3.3 and rec["evidence"] == []
        if rec["kind"] == "motion":
            assert rec["zone"] == "all" and rec["start_s"] > warmup, rec
            x0, y0, x1, y1 = rec["bbox"]
            assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 360
    room = analyze(SAMPLES / "person_room.mp4", tmp_path)
    assert {r["zone"] for r in room if r["kind"] == "motion"} == {"all"}
