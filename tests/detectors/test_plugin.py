"""The detector plug-in interface: env, video and satellite detectors all register through it.

One discriminated-union validator selects the config by ``type``; ``create`` builds the
detector of a subject from its modality's contract record, on real data (the sample video
and the Taizhou Landsat pair), and gives the same clues as the detectors used directly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from contract.records import Frame, Reading, Tile
from detectors.env import StationMonitor
from detectors.env_config import EnvConfig, StationInfo
from detectors.fire_monitor import FireConfig
from detectors.plugin import Detector, create, parse_config, registered
from detectors.power import PowerConfig
from detectors.satellite import KINDS
from detectors.satellite_tile import SatelliteConfig, TileMonitor
from detectors.video import CameraAnalyzer
from detectors.video_config import CameraConfig
from detectors.video_plugin import CameraDetector
from offsite.cmd_video import sample_frames

ROOT = Path(__file__).resolve().parents[2]
ROOM = ROOT / "samples" / "video" / "person_room.mp4"
TZ = ROOT / "samples" / "satellite" / "taizhou"
T0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)


def test_all_kinds_registered_and_selected_by_type() -> None:
    assert registered() == {"env": EnvConfig, "video": CameraConfig,
                            "satellite": SatelliteConfig, "fire": FireConfig,
                            "power": PowerConfig}
    assert parse_config({"type": "fire", "group_km": 3}).group_km == 3
    power = parse_config({"type": "power", "grace_s": 120, "channels": [
        {"entity": "E", "meter": "M", "channel": "fan", "role": "treatment", "idle_kw": 1}]})
    assert isinstance(power, PowerConfig) and power.channels[0].role == "treatment"
    assert isinstance(parse_config({"type": "env", "spike_z": 12}), EnvConfig)
    video = parse_config({"type": "video", "timezone": "Asia/Shanghai",
                          "zones": [{"name": "gate", "points": [[0, 0], [1, 0], [1, 1]]}]})
    assert isinstance(video, CameraConfig) and video.zones[0].name == "gate"
    sat = parse_config({"type": "satellite", "confirm_looks": 1, "detect": {"k_mad": 3.5}})
    assert isinstance(sat, SatelliteConfig)
    assert sat.confirm.confirm_looks == 1 and sat.detect.k_mad == 3.5
    # a camera's YAML without ``type`` is still a video config
    assert CameraConfig.model_validate({"camera_id": "c"}).type == "video"


@pytest.mark.parametrize("data", [
    {"type": "radar"},                                   # no such detector
    {"spike_z": 12},                                     # no type
    {"type": "video", "spike_z": 12},                    # an env key on a camera
    {"type": "satellite", "confirm_looks": 0},           # out of range
])
def test_bad_configs_are_refused(data: dict) -> None:
    with pytest.raises(ValidationError):
        parse_config(data)


def test_env_detector_through_the_interface() -> None:
    det = create(parse_config({"type": "env", "evidence": False}), "st-1")
    assert isinstance(det, StationMonitor) and isinstance(det, Detector)
    plain = StationMonitor(StationInfo(id="st-1"), EnvConfig(evidence=False))
    values = [30.0, 31.0, -4.0, 29.0, 30.0]  # a negative SO2 concentration is impossible
    readings = [Reading(station="st-1", time=T0 + timedelta(hours=h), period="hour",
                        values={"a21026": v}) for h, v in enumerate(values)]
    got = [c for r in readings for c in det.observe(r)]
    assert {c.rule for c in got} == {"impossible/a21026"} and got[0].state == "open"
    assert got == [c for r in readings for c in plain.observe(r)]
    again = create(EnvConfig(evidence=False), "st-1", det.to_state())  # from its table
    assert again.to_state() == det.to_state()
    assert again.flush() == det.flush()


def _frames(seconds: float = 20.0) -> list[Frame]:
    out = []
    for i, (pos, image) in enumerate(sample_frames(ROOM, 2.0)):
        if pos > seconds:
            break
        small = cv2.resize(image, (384, 216), interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", small)
        assert ok
        out.append(Frame(camera="CAM-7", time=T0 + timedelta(seconds=pos), seq=i, width=384,
                         height=216, jpeg=jpeg.tobytes()))
    return out


def test_video_detector_takes_frame_records_like_the_analyzer() -> None:
    cfg = parse_config({"type": "video", "evidence": {"enabled": False}})
    det = create(cfg, "CAM-7")
    assert isinstance(det, CameraDetector) and isinstance(det, Detector)
    assert det.to_state() is None  # pixels: rebuilt from frames, not kept
    plain = CameraAnalyzer(CameraConfig(camera_id="CAM-7", evidence={"enabled": False}))
    got, want = [], []
    for frame in _frames():
        got += det.observe(frame)
        image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
        want += plain.process(image, frame.time)
    got += det.flush()
    want += plain.flush()
    assert [c.rule for c in got if c.rule == "zone/all/motion"]  # the person moves
    assert [(c.clue_id, c.state, c.time) for c in got] == \
        [(c.clue_id, c.state, c.time) for c in want]
    assert all(c.subject == "CAM-7" for c in got)


def test_video_detector_refuses_a_frame_that_is_no_jpeg() -> None:
    det = create(CameraConfig(), "CAM-7")
    bad = Frame(camera="CAM-7", time=T0, seq=1, width=2, height=2, jpeg=b"not a jpeg")
    with pytest.raises(ValueError, match="not a decodable JPEG"):
        det.observe(bad)


def _tile(when: datetime, baseline: str = "taizhou_2000_6band.tif") -> Tile:
    return Tile(tile_id="EPSG32651_t1", scene_id=f"taizhou-{when.date()}", time=when,
                uri=str(TZ / "taizhou_2003_6band.tif"), window=(0, 0, 400, 400),
                baseline_scene_id="taizhou-2000", baseline_uri=str(TZ / baseline),
                baseline_time=datetime(2000, 5, 1, tzinfo=UTC))


def test_satellite_detector_alerts_then_confirms_across_restarts() -> None:
    cfg = parse_config({"type": "satellite", "confirm_looks": 1})
    det = create(cfg, "EPSG32651_t1")
    assert isinstance(det, TileMonitor) and isinstance(det, Detector)
    first = _tile(datetime(2003, 5, 1, tzinfo=UTC))
    alerts = det.observe(first)
    assert alerts, "the Taizhou pair has known changes"
    assert all(c.subject == "EPSG32651_t1" and c.kind in KINDS for c in alerts)
    assert {c.metrics["confirmation"] for c in alerts} == {"low"}
    assert det.observe(first) == []  # re-sent acquisition: nothing new
    # the worker restarts: the tile's state comes back from its table
    again = create(cfg, "EPSG32651_t1", det.to_state())
    confirmed = again.observe(_tile(datetime(2003, 6, 1, tzinfo=UTC)))
    ids = {c.clue_id for c in alerts}
    done = [c for c in confirmed if c.clue_id in ids]
    assert done and {c.metrics["confirmation"] for c in done} == {"confirmed"}
    assert again.flush() == []


def test_satellite_detector_refuses_another_tile() -> None:
    det = create(SatelliteConfig(), "other")
    with pytest.raises(ValueError, match="given to the monitor of other"):
        det.observe(_tile(datetime(2003, 5, 1, tzinfo=UTC)))
