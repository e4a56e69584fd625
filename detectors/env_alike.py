"""Whether a station-hour's disagreement with its neighbours can be a blocked inlet.

A blocked, covered or water-sprayed inlet, or a pump passing a share of the air, changes
what reaches the PM analysers and nothing else. Two things follow, each checked per hour
against the station's own usual value (``UsualResidual``: the median of its last
``history_h`` unflagged hours, in units of the larger of their 1.4826 MAD and
``min_log_spread``, the +-15 % agreement of one analyser with another that every neighbour
score has as its floor):

* **PM2.5 and PM10 move alike** (``ratio_z``). The inlet takes the same share of the fine
  and of the coarse particles, so the station's log ratio against its neighbours', ``d =
  r_PM2.5 - r_PM10`` (the channels' log residuals against the neighbours' medians), stays
  at its usual value. Honest disagreement often moves it: a front of coarse clean air, dust
  at a suburb, a plume, one analyser of the two drifting or failing. On the two real
  Beijing years the interference clues of the record alone (17 episodes) were mostly of
  that kind: in 9 of them most hours had ``d`` over 3 robust sds off (PM2.5 a quarter of
  its neighbours' while PM10 was with them, or the reverse), where 5.3 % of all hours and
  2.3 % of the hours under a city haze with the station below it are (BENCHMARKS.md).
* **CO stays with the neighbours** (``witness_z``, one-sided). The CO analyser has its own
  inlet; a station whose CO is far *under* its usual residual breathes other air than its
  neighbours (a clean air mass reaching a suburb hours before the city), and its low PM
  says nothing about its inlet. ``env_episodes`` already explains the PM residual by the CO
  one linearly; the check covers what a line does not: in a front PM falls further than CO
  (whose regional background is a larger share of it). 1.6 % of all real hours (1.8 % of
  haze hours) are over 3 robust sds under; CO far *over* its usual is no excuse for low
  PM, so that side is not checked.

An hour that fails either is no evidence of interference: it can only lower the CUSUM, as
an hour above the expected value does (``env_episodes.joint_evidence``). 3 robust sds is
the ``z_extend`` of the rules (99.7 % of a normal residual). Local sources are not judged by
these: a dust source raises PM10 more than PM2.5, a fire CO as well. A check whose input is
missing in the hour, or whose history is still short (``min_history_h``), passes: the hour
is judged as before.

State: JSON dicts kept with the ``RegionJudge``'s (keys ``<station>/ratio`` and
``<station>/co``): ``hist`` the last unflagged residuals and ``fit`` (usual value, spread,
new values since). An old judge state without them starts them empty.
"""

from __future__ import annotations

import numpy as np

from detectors.env_neighbours import NeighbourConfig
from detectors.order_stats import median_inplace

#: new values after which the usual value is fitted again (a median of 720 values per
#: station-hour would dominate the neighbour stage's cost; a day's lag changes nothing)
FIT_EVERY_H = 24


class UsualResidual:
    """One residual of one station against its usual value: the last ``history_h``
    unflagged values and their robust centre and spread, fitted again every
    ``FIT_EVERY_H`` new values. The ratio and CO checks here use it, and so does
    ``env_episodes.EpisodeTracker`` for the station's bias against its neighbours (on its
    own state dict, whose ``hist`` and ``fit`` keys are these; its fit is kept unrounded,
    ``digits`` None)."""

    def __init__(self, cfg: NeighbourConfig, state: dict | None = None,
                 digits: int | None = 4) -> None:
        self.cfg = cfg
        self.s: dict = state if state is not None else {"hist": []}
        self.digits = digits

    def ready(self) -> bool:
        """Whether the history is long enough to judge by (``min_history_h``)."""
        return len(self.s["hist"]) >= self.cfg.min_history_h

    def usual(self) -> tuple[float, float, bool]:
        """The usual value (median of the history), its spread (1.4826 MAD) and whether
        they were fitted again just now."""
        fit = self.s.get("fit")
        refitted = fit is None or fit[2] >= FIT_EVERY_H
        if refitted:
            arr = np.asarray(self.s["hist"], float)
            usual = median_inplace(arr)  # as np.median, without its overhead
            spread = 1.4826 * median_inplace(np.abs(arr - usual))
            if self.digits is not None:
                usual, spread = round(usual, self.digits), round(spread, self.digits)
            fit = self.s["fit"] = [usual, spread, 0]
        return fit[0], fit[1], refitted

    def z(self, x: float) -> float | None:
        """``x`` in robust sds from the station's usual value (in units of the larger of
        the spread and ``min_log_spread``); None while the history is short."""
        if not self.ready():
            return None
        usual, spread, _ = self.usual()
        return (x - usual) / max(spread, self.cfg.min_log_spread)

    def remember(self, x: float) -> None:
        """An unflagged hour's residual into the station's history (in place: a copy of
        720 values an hour was not free)."""
        if self.s.get("fit") is not None:
            self.s["fit"][2] += 1
        hist = self.s["hist"]
        hist.append(round(x, 4))
        if len(hist) > self.cfg.history_h:
            del hist[:len(hist) - self.cfg.history_h]
