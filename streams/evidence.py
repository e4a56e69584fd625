"""Evidence drawn after its clue: an alert does not wait for its pictures.

An env clue's PNG plot costs about 125 ms of CPU. The env agent used to draw every plot of a
batch before the batch's clues went out, and the next batch waited too. Now the detector
only captures what to draw (``SeriesPlot``), the env agent puts it into the evidence item as
``pending`` (plain JSON, ``plot_spec``) and sends the clue at once. This agent, a consumer of
the ``clues`` topic next to the clues sink and fusion, draws pending items in the plot pool
(``streams.evidence_pool``: a child process, the other core) and sends the clue again with
the PNG: the same clue (id, state, time, route), which the clues sink writes as no change
but fixes its evidence (``storage.evidence_store``), and fusion adds to the case.

Nothing is lost in a crash: the pending plot is durable in Kafka with the clue before the
env agent commits its readings, and this agent's ``clues`` offsets are committed only after
the clue with its PNG is acknowledged by the broker (the batch body returns only then). A
worker dying in between re-reads the clue and draws it again; the drawing is deterministic,
so the evidence store recognises the same bytes by id and keeps them once (RELIABILITY.md,
"Env clues and their evidence"). A pending item that cannot be drawn (a spec that does not
validate, a plot that fails in the pool and here) is dropped from the re-sent clue and
logged, so it never comes back here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from contract.clue import Clue, EvidenceRef
from contract.topics import CLUES
from detectors.plots import SeriesPlot
from streams.clues import decode  # None for what the clues sink dead-letters
from streams.evidence_pool import PlotPool, Plots

if TYPE_CHECKING:
    from streams.app import Streams

log = logging.getLogger(__name__)
_PLOT: TypeAdapter[SeriesPlot] = TypeAdapter(SeriesPlot)


def plot_spec(plot: SeriesPlot) -> dict[str, Any]:
    """A plot as JSON that travels with its clue (``EvidenceRef.pending``)."""
    return {"series": _PLOT.dump_python(plot, mode="json")}


def plot_of(spec: dict[str, Any]) -> SeriesPlot:
    """The plot a ``plot_spec`` describes; it draws the same PNG as the original."""
    return _PLOT.validate_python(spec["series"])


def defer(ref: EvidenceRef, plot: SeriesPlot) -> None:
    """An ``on_plot`` for the env monitors: keep the plot to be drawn after the clue."""
    ref.pending = plot_spec(plot)


def is_pending(item: EvidenceRef) -> bool:
    return item.pending is not None and not item.content


class EvidenceAgent:
    """Draws the pending evidence of clues and sends each clue again with it."""

    def __init__(self, streams: Streams) -> None:
        settings = streams.settings
        self.pool = PlotPool(settings.plot_processes)
        self.send_clues: Callable[[Sequence[Clue]], Awaitable[Any]] = \
            streams.clue_exit.publish

        self.agent = streams.batch_agent(streams.topic(CLUES), "streams.evidence.draw_evidence",
                                         lambda events: self.handle(events),
                                         within=settings.clue_batch_seconds,
                                         what="clue events")

    async def handle(self, events: Sequence[Any]) -> int:
        """Draw the batch's pending items and send their clues again; returns clues sent."""
        todo = [c for c in (decode(e.value) for e in events)
                if c is not None and any(is_pending(i) for i in c.evidence)]
        if not todo:
            return 0
        plots = Plots(self.pool)
        for clue in todo:
            for item in [i for i in clue.evidence if is_pending(i)]:
                try:
                    plots.add(item, plot_of(item.pending))  # type: ignore[arg-type]
                except (ValidationError, KeyError, TypeError) as exc:
                    log.error("evidence %s of %s cannot be drawn (%s); dropped", item.name,
                              clue.clue_id, exc)
                    clue.evidence.remove(item)
        await plots.fill()  # in the pool; a failed child: drawn here instead
        for clue in todo:
            for item in list(clue.evidence):
                if item.content:
                    item.pending = None
                elif item.pending is not None:  # drawing failed for good: never loops
                    log.error("evidence %s of %s could not be drawn; dropped", item.name,
                              clue.clue_id)
                    clue.evidence.remove(item)
        await self.send_clues(todo)  # acked before this batch's offsets are committed
        return len(todo)


def register(streams: Streams) -> EvidenceAgent:
    return EvidenceAgent(streams)
