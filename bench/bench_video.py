"""Video detector cost per core against H.264 decode cost, in one run (not run by tests).

Why: issue 5 item 6. A camera's stream must be decoded in full (every frame, at its native
rate) while the detectors see only the analysis rate (2 fps) at the analysis size (the RTSP
ingester's: at most 640 px wide, so 640x360 from 720p). This measures, on one core
(OpenCV and FFmpeg held to one thread; CPU time, so other load on the machine matters
less):

* decode: frames/s of the 720p H.264 file (grab + retrieve of every frame);
* detectors: frames/s of ``CameraAnalyzer.process`` on the sampled 640x360 frames, with
  the default config (tamper + one full-frame motion zone) and with person detection;
* the ratio of detector CPU time to decode CPU time for the same stretch of video.

Usage: ``python -m bench.bench_video [CLIP_720P.mp4]``; without an argument it makes
``/tmp/offsite_720p.mp4`` from samples/video/person_room.mp4 with
``ffmpeg -i person_room.mp4 -vf scale=1280:720 -c:v libx264 -pix_fmt yuv420p``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "threads;1")

import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from detectors.video import CameraAnalyzer  # noqa: E402
from detectors.video_config import CameraConfig, Zone  # noqa: E402

ROOM = Path(__file__).resolve().parents[1] / "samples" / "video" / "person_room.mp4"
RATE = 2.0
MAX_WIDTH = 640  # ingest.rtsp default
T0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)


def make_clip(path: Path) -> Path:
    if not path.exists():
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(ROOM),
                        "-vf", "scale=1280:720", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                        str(path)], check=True)
    return path


def decode(path: Path) -> tuple[int, float, float, list[tuple[float, np.ndarray]]]:
    """Decode every frame; keep the 2 fps samples downscaled (the ingester's work).
    Returns (frames decoded, decode CPU s, native fps, samples)."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    native = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames, spent, next_at = 0, 0.0, 0.0
    samples: list[tuple[float, np.ndarray]] = []
    while True:
        t = time.process_time()
        ok, frame = cap.read()
        spent += time.process_time() - t
        if not ok:
            break
        position = frames / native
        frames += 1
        if position + 1e-6 >= next_at:
            next_at += 1.0 / RATE
            h, w = frame.shape[:2]
            size = (MAX_WIDTH, round(h * MAX_WIDTH / w)) if w > MAX_WIDTH else (w, h)
            samples.append((position, cv2.resize(frame, size, interpolation=cv2.INTER_AREA)))
    cap.release()
    return frames, spent, native, samples


def detect(cfg: CameraConfig, samples: list[tuple[float, np.ndarray]]) -> tuple[float, int]:
    """CPU seconds of the detectors over the samples, and the clue states raised."""
    cfg.evidence.enabled = False
    analyzer = CameraAnalyzer(cfg)
    states = 0
    t = time.process_time()
    for position, frame in samples:
        states += len(analyzer.process(frame, T0 + timedelta(seconds=position)))
    states += len(analyzer.flush())
    return time.process_time() - t, states


def main() -> None:
    cv2.setNumThreads(1)
    clip = make_clip(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/offsite_720p.mp4"))
    frames, decode_s, native, samples = decode(clip)
    video_s = frames / native
    h, w = samples[0][1].shape[:2]
    print(f"clip {clip}: {frames} frames, {native:g} fps, {video_s:.1f} s; "
          f"{len(samples)} samples at {RATE:g} fps, {w}x{h}")
    print(f"decode 1280x720 H.264: {frames / decode_s:.1f} frames/s per core "
          f"({decode_s:.2f} CPU s, {decode_s / video_s * 1000:.1f} ms per s of video)")
    person = Zone(name="all", points=[(0, 0), (1, 0), (1, 1), (0, 1)],
                  objects=["motion", "person"])
    for name, cfg in [("default (tamper + motion)", CameraConfig(camera_id="bench")),
                      ("with person detection", CameraConfig(camera_id="bench",
                                                             zones=[person]))]:
        spent, states = detect(cfg, samples)
        print(f"detectors, {name}: {len(samples) / spent:.1f} frames/s per core "
              f"({spent / len(samples) * 1000:.1f} ms/frame, {states} clue states); "
              f"detector/decode CPU for the same video: {spent / decode_s:.3f} "
              f"(per frame: {spent / len(samples) / (decode_s / frames):.2f})")


if __name__ == "__main__":
    main()
