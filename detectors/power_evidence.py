"""The evidence plot of a power clue: production and treatment over the episode.

An inspector has to see both sides at once: the production line's draw (running) next to
the treatment equipment's (off or idling), with the episode shaded and the threshold the
rule used. Matplotlib's object API on the Agg canvas (as ``detectors.plots``): no display,
no global state, safe in worker threads and child processes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


@dataclass(frozen=True)
class PowerPlot:
    """What the plot shows, captured when the clue is made (rendered elsewhere)."""

    title: str
    times: Sequence[datetime]
    production: Sequence[float]
    treatment: dict[str, Sequence[float | None]] = field(default_factory=dict)
    limit: float | None = None
    shade: tuple[datetime, datetime] | None = None

    def render(self) -> bytes:
        fig = Figure(figsize=(7, 4), dpi=80)
        FigureCanvasAgg(fig)
        top, bottom = fig.subplots(2, 1, sharex=True)
        for ax in (top, bottom):
            if self.shade is not None:
                ax.axvspan(self.shade[0], self.shade[1], color="tab:red", alpha=0.15)
            ax.tick_params(labelsize=7)
        top.plot(list(self.times), list(self.production), lw=0.9, marker=".", ms=2,
                 color="tab:blue", label="production kW")
        top.legend(fontsize=7, loc="upper left")
        top.set_title(self.title, fontsize=9)
        for name, values in self.treatment.items():
            pts = [(t, v) for t, v in zip(self.times, values, strict=False) if v is not None]
            bottom.plot([t for t, _ in pts], [v for _, v in pts], lw=0.9, marker=".", ms=2,
                        label=f"treatment {name} kW")
        if self.limit is not None:
            bottom.axhline(self.limit, color="tab:red", lw=1, ls="--",
                           label=f"threshold {self.limit:g} kW")
        bottom.legend(fontsize=7, loc="upper left")
        fig.autofmt_xdate()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
