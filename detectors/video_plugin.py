"""The video detector as a plug-in (``type: video``): a camera's analyzer fed Frame records.

``CameraAnalyzer`` (``detectors/video.py``) works on decoded pixels on any timeline, which is
what the offline ``offsite video analyze`` needs; ``CameraDetector`` adds the plug-in face:
``observe(frame)`` takes the contract's ``Frame`` (a JPEG, as ingest publishes it). Its state
is pixels (background model, tamper reference, tracks), rebuilt from the next frames after a
restart, so ``to_state()`` is ``None`` and a given state is not restored.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from contract.clue import Clue
from contract.records import Frame
from detectors.plugin import register
from detectors.video import CameraAnalyzer
from detectors.video_config import CameraConfig


class CameraDetector(CameraAnalyzer):
    """All video detectors of one camera, taking ``Frame`` records."""

    def observe(self, frame: Frame) -> list[Clue]:
        """Decode and analyse one frame (pure CPU work; no clock, the frame has its time)."""
        image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"frame {frame.seq} of {frame.camera} is not a decodable JPEG")
        return self.process(image, frame.time)

    def to_state(self) -> None:
        return None


def _factory(config: Any, subject: str, state: dict[str, Any] | None) -> CameraDetector:
    return CameraDetector(config.model_copy(update={"camera_id": subject}))


register(CameraConfig, _factory)
