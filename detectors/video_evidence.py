"""Evidence for video clues: an annotated JPEG snapshot and a short H.264 MP4 clip.

The snapshot shows the zone (or line) and the moving regions drawn on the frame, so a
reviewer sees at once why the clue was raised. The clip is cut from a ring buffer of recent
frames (pre-roll) plus the frames that follow (post-roll). Every item carries its sha256;
the evidence store later fixes and signs it.

Encoding: the pip OpenCV wheel has no H.264 encoder (its 'avc1' writer fails to open), so
clips are piped as raw frames into the ``ffmpeg`` binary (libx264, yuv420p, faststart),
which is then a system dependency. Without ffmpeg we fall back to OpenCV's 'avc1' (works
in builds with an H.264 encoder) and last to 'mp4v' (MPEG-4 part 2, still video/mp4).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from contract.clue import EvidenceRef

ZONE_COLOUR = (0, 200, 255)
MOTION_COLOUR = (0, 0, 255)
PERSON_COLOUR = (0, 255, 0)


@dataclass
class Overlay:
    """What to draw on a snapshot, in the original frame's pixels."""

    polygons: list[np.ndarray]
    boxes: list[tuple[int, int, int, int]]
    people: list[tuple[int, int, int, int]]
    label: str = ""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def downscale(frame: np.ndarray, max_height: int) -> tuple[np.ndarray, float]:
    """Shrink to ``max_height`` (even sizes, as H.264 with yuv420p needs)."""
    h, w = frame.shape[:2]
    scale = min(1.0, max_height / h)
    nw, nh = max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2)
    if (nw, nh) == (w, h):
        return frame, 1.0
    return cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA), nw / w


def snapshot(frame_bgr: np.ndarray, overlay: Overlay, name: str, max_height: int = 720,
             quality: int = 85) -> EvidenceRef:
    """Annotated JPEG of one frame."""
    image, scale = downscale(frame_bgr, max_height)
    image = image.copy()
    thick = max(1, image.shape[0] // 240)
    for poly in overlay.polygons:
        pts = np.round(poly * scale).astype(np.int32)
        closed = len(pts) > 2
        cv2.polylines(image, [pts], closed, ZONE_COLOUR, thick, cv2.LINE_AA)
    for boxes, colour in ((overlay.boxes, MOTION_COLOUR), (overlay.people, PERSON_COLOUR)):
        for x, y, w, h in boxes:
            p0 = (int(x * scale), int(y * scale))
            p1 = (int((x + w) * scale), int((y + h) * scale))
            cv2.rectangle(image, p0, p1, colour, thick)
    if overlay.label:
        cv2.putText(image, overlay.label, (8, 8 + 12 * thick), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thick, (255, 255, 255), thick, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    data = buf.tobytes()
    return EvidenceRef(media_type="image/jpeg", name=name, content=data, sha256=sha256(data))


def encode_mp4(frames: list[np.ndarray], fps: float) -> bytes:
    """Encode same-sized BGR frames as MP4 (see the module docstring for the order)."""
    if not frames:
        raise ValueError("no frames to encode")
    h, w = frames[0].shape[:2]
    fps = max(0.5, min(60.0, fps))
    with tempfile.TemporaryDirectory(prefix="offsite-clip-") as tmp:
        out = Path(tmp) / "clip.mp4"
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg:
            cmd = [ffmpeg, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
                   "-s", f"{w}x{h}", "-r", f"{fps:.3f}", "-i", "-", "-c:v", "libx264",
                   "-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                   "-threads", "1", str(out)]
            raw = b"".join(np.ascontiguousarray(f).tobytes() for f in frames)
            done = subprocess.run(cmd, input=raw, capture_output=True, timeout=120,
                                  check=False)
            if done.returncode == 0 and out.exists():
                return out.read_bytes()
        for fourcc in ("avc1", "mp4v"):
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
            if writer.isOpened():
                for frame in frames:
                    writer.write(frame)
                writer.release()
                if out.exists() and out.stat().st_size > 0:
                    return out.read_bytes()
            writer.release()
    raise RuntimeError("no MP4 encoder available (install ffmpeg)")


class FrameRing:
    """Recent frames for pre-roll, kept small (``max_height``) to bound memory."""

    def __init__(self, pre_roll_s: float, max_height: int) -> None:
        self.pre_roll_s = pre_roll_s
        self.max_height = max_height
        self.frames: deque[tuple[datetime, np.ndarray]] = deque()

    def push(self, moment: datetime, frame_bgr: np.ndarray) -> np.ndarray:
        small, _ = downscale(frame_bgr, self.max_height)
        self.frames.append((moment, small))
        while self.frames and (moment - self.frames[0][0]).total_seconds() > self.pre_roll_s:
            self.frames.popleft()
        return small


class ClipRecorder:
    """Collects pre-roll + post-roll frames for one clue; finished at ``until``."""

    def __init__(self, ring: FrameRing, until: datetime, name: str) -> None:
        self.frames: list[tuple[datetime, np.ndarray]] = list(ring.frames)
        self.until = until
        self.name = name

    def add(self, moment: datetime, small: np.ndarray) -> None:
        if not self.frames or moment > self.frames[-1][0]:
            self.frames.append((moment, small))

    def due(self, moment: datetime) -> bool:
        return moment >= self.until

    def finish(self) -> EvidenceRef:
        size = self.frames[-1][1].shape[:2]
        frames = [f for _, f in self.frames if f.shape[:2] == size]
        times = [t for t, f in self.frames if f.shape[:2] == size]
        steps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        positive = [s for s in steps if s > 0]
        fps = 1.0 / float(np.median(positive)) if positive else 2.0
        data = encode_mp4(frames, fps)
        return EvidenceRef(media_type="video/mp4", name=self.name, content=data,
                           sha256=sha256(data))
