"""Evidence plots rendered in a process pool, off the env detector's thread.

A matplotlib PNG costs ~125 ms of CPU, and the env detector drew two per exceedance clue in
its own thread, under the worker's GIL: the detector, the readings sink and Kafka all
waited for it. Now the detector only captures what to draw (``SeriesPlot``, with the values
as they were when the clue was made) and a child process draws it while detection goes on;
on a 2-core machine that is the other core.

The clue does not wait for its plots: the env agent sends it at once and sends it again
with its evidence once ``Plots.fill`` has every PNG of the batch (``EnvAgent.send_alerts``);
the batch's offsets are committed after that (the env agent's body returns only then), so a
crash before the PNG is sent re-reads the readings and draws it again. If the pool fails
(a child killed, a pickling error, a child stuck past ``timeout_s``) the plot is drawn in
this process instead and a stuck pool is replaced; no evidence goes out without content.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

from contract.clue import EvidenceRef
from detectors.plots import SeriesPlot, warm

log = logging.getLogger(__name__)


def exit_with(parent: int) -> None:
    """Pool child initializer: exit once the worker ``parent`` is gone. A worker killed
    outright (SIGKILL, OOM) cannot shut its pool down, and a spawned child holds both ends
    of its call queue, so it would wait for work for ever; it also inherits the worker's
    ignored SIGTERM. Seen: orphaned pool children after benchmark runs."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class PlotPool:
    """A lazily started pool of ``processes`` children (spawned: the worker has threads)."""

    def __init__(self, processes: int, timeout_s: float = 60.0) -> None:
        self.processes = processes
        self.timeout_s = timeout_s  # a plot taking longer: the child is stuck, replace it
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, plot: SeriesPlot) -> Future[bytes] | None:
        """Start drawing ``plot``; None when there is no pool (draw it here instead)."""
        if self.processes <= 0:
            return None
        with self._lock:
            try:
                if self._pool is None:
                    self._pool = ProcessPoolExecutor(
                        self.processes, mp_context=multiprocessing.get_context("spawn"),
                        initializer=exit_with, initargs=(os.getpid(),))
                    self._pool.submit(warm)
                return self._pool.submit(plot.render)
            except Exception as exc:  # broken pool: start a new one next time
                log.warning("plot pool unavailable (%s); drawing in the worker", exc)
                self._pool = None
                return None

    def close(self, kill: bool = False) -> None:
        """Stop the pool (``kill``: its children too, for one that hangs)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            children = list(getattr(pool, "_processes", {}).values()) if kill else []
            pool.shutdown(wait=False, cancel_futures=True)
            for child in children:
                child.kill()


@dataclass
class Plots:
    """The plots of one batch: ``add`` is the monitors' ``on_plot`` (thread-safe), ``fill``
    puts every PNG into its EvidenceRef."""

    pool: PlotPool
    pending: list[tuple[EvidenceRef, SeriesPlot, Future[bytes] | None]] = field(
        default_factory=list)

    def add(self, ref: EvidenceRef, plot: SeriesPlot) -> None:
        self.pending.append((ref, plot, self.pool.submit(plot)))

    async def fill(self) -> None:
        for ref, plot, future in self.pending:
            try:
                if future is None:
                    raise RuntimeError("no plot pool")
                ref.content = await asyncio.wait_for(asyncio.wrap_future(future),
                                                     self.pool.timeout_s)
            except Exception as exc:
                if future is not None:
                    log.warning("plot %s failed in the pool (%r); drawing it here", ref.name,
                                exc)
                    if isinstance(exc, TimeoutError):
                        self.pool.close(kill=True)  # a new pool starts with the next plot
                try:
                    ref.content = await asyncio.to_thread(plot.render)
                except Exception:  # a plot that cannot be drawn must not stop the others
                    log.exception("plot %s cannot be drawn; left without content", ref.name)
        self.pending.clear()
