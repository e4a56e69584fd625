"""The tamper reference is the scene, not what passes through it.

A plain room (a wall, a floor, little texture) and a patterned box carried across the view
while the camera learns its reference: the box's blocks are textured in one learning frame
each, not in most, so they are not the scene's texture. Before, the reference took one
frame's texture: once the box was gone, most of the "textured" blocks were flat and the
camera read "occluded" for good (no refresh runs while a condition holds), and it never
reported motion again (seen in the video latency bench)."""

from __future__ import annotations

import numpy as np

from detectors.video_config import TamperSettings
from detectors.video_tamper import TamperDetector

H, W = 180, 320


def room(rng: np.random.Generator) -> np.ndarray:
    """A plain wall over a floor of nearly the same grey, sensor noise: only the light
    switch's block is textured."""
    grey = np.full((H, W), 120.0)
    grey[H * 2 // 3:, :] = 115.0
    grey[10:30, 10:30] = 200.0  # a light switch: the little texture the scene has
    return np.clip(grey + rng.normal(0.0, 1.5, grey.shape), 0, 255).astype(np.uint8)


def with_box(grey: np.ndarray, x: int) -> np.ndarray:
    out = grey.copy()
    box = np.indices((60, 80)).sum(axis=0) % 16 < 8  # a checkered carton, 60 x 80 px
    out[60:120, x:x + 80] = np.where(box, 230, 30)
    return out


def test_a_box_carried_through_during_learning_is_not_the_reference() -> None:
    rng = np.random.default_rng(5)
    tamper = TamperDetector(TamperSettings())
    for k in range(TamperSettings().learn_frames):  # carried across: 70 px a sample
        tamper.update(with_box(room(rng), 10 + 70 * k))
    assert tamper.learned
    # the box is gone: the plain room is what the camera always sees, nothing is covered
    readings = [tamper.update(room(rng)) for _ in range(10)]
    assert not any(r.conditions.get("occlusion") for r in readings)


def test_covering_the_lens_is_still_occlusion() -> None:
    rng = np.random.default_rng(6)
    tamper = TamperDetector(TamperSettings())
    for _ in range(TamperSettings().learn_frames):
        tamper.update(with_box(room(rng), 120))  # the box stands there: the scene
    assert not tamper.update(with_box(room(rng), 120)).conditions.get("occlusion")
    covered = np.clip(rng.normal(60.0, 1.0, (H, W)), 0, 255).astype(np.uint8)  # a hand
    assert tamper.update(covered).conditions.get("occlusion")
