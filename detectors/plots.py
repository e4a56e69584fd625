"""PNG evidence for clues: the series, the limit line and the episode shaded.

Uses matplotlib's object API with the Agg canvas (never pyplot), so it needs no display,
keeps no global figure registry and is safe to call from worker threads.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from contract.clue import EvidenceRef  # noqa: E402


def series_png(title: str, times: Sequence[datetime], values: Sequence[float], *,
               limit: float | None = None, shade: tuple[datetime, datetime] | None = None,
               flagged: Sequence[tuple[datetime, float]] = (), unit: str = "",
               means: Sequence[tuple[datetime, datetime, float]] = (),
               band: Sequence[tuple[datetime, float, float, float]] = ()) -> bytes:
    """Render one channel as a small PNG and return its bytes.

    ``means`` draws window averages (start, end, value) as horizontal steps so a daily-mean
    exceedance is visible over the hourly series it came from; ``flagged`` marks values that
    carried a non-N flag (they do not count, but an inspector wants to see them);
    ``band`` (time, low, high, median) draws the neighbours' consensus band and median, so a
    station far outside the band its neighbours set is plain to see.
    """
    fig = Figure(figsize=(7, 3), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if shade is not None:
        ax.axvspan(shade[0], shade[1], color="tab:red", alpha=0.15, label="episode")
    if band:
        bt = [b[0] for b in band]
        ax.fill_between(bt, [b[1] for b in band], [b[2] for b in band], color="tab:green",
                        alpha=0.2, step="mid", label="neighbours' band")
        ax.plot(bt, [b[3] for b in band], lw=0.8, color="tab:green", ls="--",
                label="neighbours' median")
    if times:
        ax.plot(list(times), list(values), lw=0.9, color="tab:blue", marker=".", ms=2,
                label="value")
    if flagged:
        ax.plot([t for t, _ in flagged], [v for _, v in flagged], "x", color="tab:orange",
                ms=4, label="flagged")
    for i, (start, end, value) in enumerate(means):
        ax.hlines(value, start, end, colors="tab:purple", lw=2,
                  label="window mean" if i == 0 else None)
    if limit is not None:
        ax.axhline(limit, color="tab:red", lw=1, ls="--", label=f"limit {limit:g}")
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(unit, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


@dataclass(frozen=True)
class SeriesPlot:
    """Everything ``series_png`` draws, captured when the clue is made: a detector can hand
    the rendering to another process (``streams.evidence_pool``) and the PNG is the same as
    if it had been drawn there and then."""

    title: str
    times: Sequence[datetime]
    values: Sequence[float]
    limit: float | None = None
    shade: tuple[datetime, datetime] | None = None
    flagged: Sequence[tuple[datetime, float]] = field(default_factory=tuple)
    means: Sequence[tuple[datetime, datetime, float]] = field(default_factory=tuple)
    band: Sequence[tuple[datetime, float, float, float]] = field(default_factory=tuple)

    def render(self) -> bytes:
        return series_png(self.title, self.times, self.values, limit=self.limit,
                          shade=self.shade, flagged=self.flagged, means=self.means,
                          band=self.band)


#: where a detector's evidence plots go: None renders them at once; a callback gets the
#: (still empty) EvidenceRef and what to draw, and fills the content later (the stream
#: sends the clue first, ``streams.evidence``)
OnPlot = Callable[[EvidenceRef, SeriesPlot], None]


def plot_evidence(name: str, plot: SeriesPlot, on_plot: OnPlot | None) -> EvidenceRef:
    """A PNG evidence item of ``plot``: drawn now, or handed to ``on_plot``."""
    ref = EvidenceRef(media_type="image/png", name=name)
    if on_plot is None:
        ref.content = plot.render()
    else:
        on_plot(ref, plot)
    return ref


def warm() -> bool:
    """Nothing to do: importing this module (matplotlib) is the point, in a new process."""
    return True
