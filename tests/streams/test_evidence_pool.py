"""Evidence plots drawn in the child process are byte for byte the plots the detector drew
in-line; ``handle_batch`` sends its clues without waiting for a PNG and the evidence agent
sends them again with it; a dead pool falls back to drawing in the worker, so no clue loses
its evidence."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import datetime, timedelta, timezone
from typing import Any

from contract.clue import Clue, EvidenceRef
from contract.records import Reading, env_records
from detectors.env import StationMonitor
from detectors.env_config import EnvConfig, StationInfo
from detectors.plots import SeriesPlot
from streams import env as E
from streams.evidence import EvidenceAgent, plot_of, plot_spec
from streams.evidence_pool import PlotPool, Plots
from tests.streams.conftest import Build, FakeEvent, FakeMsg, FakeTable

CST = timezone(timedelta(hours=8))


def episode() -> list[Reading]:
    """Two days: an ordinary one, then PM2.5 far over its daily limit, closed by a clean day."""
    vals = [30.0 + (h % 7) for h in range(24)] + [160.0 + (h % 5) for h in range(24)]
    vals += [20.0 + (h % 3) for h in range(25)]
    start = datetime(2025, 3, 10, tzinfo=CST)
    return [Reading(station="S1", time=start + timedelta(hours=i), period="hour",
                    values={"a34004": v}, interval_s=3600) for i, v in enumerate(vals)]


def inline_clues() -> list[Clue]:
    return StationMonitor(StationInfo(id="S1", interval_s=3600)).observe_many(episode())


def test_pool_draws_the_same_png_as_inline() -> None:
    expected = [e for c in inline_clues() for e in c.evidence]
    assert len(expected) >= 2 and all(e.content.startswith(b"\x89PNG") for e in expected)
    pool = PlotPool(1)
    try:
        plots = Plots(pool)
        mon = StationMonitor(StationInfo(id="S1", interval_s=3600))
        mon.on_plot = plots.add
        clues = mon.observe_many(episode())
        refs = [e for c in clues for e in c.evidence]
        assert refs and all(r.content == b"" for r in refs)  # not drawn by the detector
        assert all(f is not None for _, _, f in plots.pending)  # handed to the pool
        asyncio.run(plots.fill())
        assert [(r.name, r.content) for r in refs] == [(e.name, e.content) for e in expected]
    finally:
        pool.close()


def test_dead_pool_falls_back_to_drawing_here() -> None:
    pool = PlotPool(1)
    try:
        plot = SeriesPlot("t", [datetime(2025, 1, 1, tzinfo=CST)], [1.0], limit=2.0)
        first = pool.submit(plot)
        assert first is not None and first.result(timeout=120) == plot.render()
        assert pool._pool is not None
        for pid in list(pool._pool._processes):  # the child dies (OOM killer, say)
            os.kill(pid, signal.SIGKILL)
        plots = Plots(pool)
        ref = EvidenceRef(media_type="image/png", name="x.png")
        plots.add(ref, plot)
        asyncio.run(plots.fill())
        assert ref.content == plot.render()
    finally:
        pool.close()


def test_stuck_pool_is_replaced_and_the_plot_drawn_here() -> None:
    pool = PlotPool(1, timeout_s=2.0)
    stopped: list[int] = []
    try:
        plot = SeriesPlot("t", [datetime(2025, 1, 1, tzinfo=CST)], [1.0], limit=2.0)
        first = pool.submit(plot)
        assert first is not None and first.result(timeout=120) == plot.render()
        assert pool._pool is not None
        stopped = list(pool._pool._processes)
        for pid in stopped:  # the child hangs (stopped, not dead)
            os.kill(pid, signal.SIGSTOP)
        plots = Plots(pool)
        ref = EvidenceRef(media_type="image/png", name="x.png")
        plots.add(ref, plot)
        asyncio.run(plots.fill())
        assert ref.content == plot.render() and pool._pool is None
        again = pool.submit(plot)  # a fresh pool
        assert again is not None and again.result(timeout=120) == plot.render()
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        pool.close()


def test_plot_spec_round_trip_draws_the_same_png() -> None:
    """The plot travels with its clue as JSON; drawn from it, the PNG is byte for byte the
    one drawn from the detector's own ``SeriesPlot`` (so a re-drawing is recognised)."""
    seen: list[tuple[EvidenceRef, SeriesPlot]] = []
    mon = StationMonitor(StationInfo(id="S1", interval_s=3600))
    mon.on_plot = lambda ref, plot: seen.append((ref, plot))
    mon.observe_many(episode())
    assert seen
    for _, plot in seen:
        spec = json.loads(json.dumps(plot_spec(plot)))  # as it crosses Kafka
        assert plot_of(spec).render() == plot.render()


def test_clue_goes_at_once_and_again_with_its_png(build: Build) -> None:
    """The env agent sends every clue without drawing anything (plots pending); the
    evidence agent draws them in the pool and sends the same clues again with the PNGs the
    detector would have drawn inline."""

    streams, topic = build("streams.env", "streams.evidence")
    agent: E.EnvAgent = streams.agents["streams.env"]
    drawer: EvidenceAgent = streams.agents["streams.evidence"]

    async def lookup(stations: Any) -> dict[str, E.StationEntry]:
        return {s: E.default_entry(s, known=None) for s in stations}  # registry not judged

    agent.monitors = FakeTable()  # type: ignore[assignment]
    agent.processor = E.EnvProcessor(EnvConfig())
    agent.registry.lookup = lookup  # type: ignore[method-assign]
    events = [FakeEvent(r.dumps(), FakeMsg(1)) for r in env_records(episode())]
    try:
        n = asyncio.run(agent.handle_batch(events))
        first = [c for _, c in topic.sent]
        assert len(first) == n and all(not i.content for c in first for i in c.evidence)
        assert any(i.pending for c in first for i in c.evidence)
        clue_events = [FakeEvent(c.model_dump_json().encode(), FakeMsg(0)) for c in first]
        assert asyncio.run(drawer.handle(clue_events)) == sum(
            1 for c in first if c.evidence)
    finally:
        drawer.pool.close()
    later = [c for _, c in topic.sent[n:]]
    expected = {(c.rule, c.state): [e.content for e in c.evidence] for c in inline_clues()}
    assert {(c.rule, c.state) for c in first} == set(expected)
    got = {(c.rule, c.state): [e.content for e in c.evidence] for c in later}
    assert got == {k: v for k, v in expected.items() if v} and got
    assert all(i.pending is None for c in later for i in c.evidence)
    sent = {(c.clue_id, c.state, c.time): c for c in first}
    for clue in later:  # the same clue event, only its evidence drawn
        assert clue.model_copy(update={"evidence": []}) == sent[
            clue.clue_id, clue.state, clue.time].model_copy(update={"evidence": []})
    again = [FakeEvent(c.model_dump_json().encode(), FakeMsg(0)) for c in later]
    assert asyncio.run(drawer.handle(again)) == 0  # nothing pending: no loop


def test_undrawable_evidence_is_dropped_and_the_rest_drawn(build: Build) -> None:
    """A pending item that cannot be drawn leaves its clue (logged), so the clue sent again
    carries nothing pending and never comes back; the other items are drawn."""
    streams, topic = build("streams.evidence")
    drawer: EvidenceAgent = streams.agents["streams.evidence"]
    plot = SeriesPlot("t", [datetime(2025, 1, 1, tzinfo=CST)], [1.0], limit=2.0)
    clues = []
    for rule, spec in (("good", plot_spec(plot)), ("bad", {"nope": 1})):
        clues.append(Clue(modality="env", kind="exceedance", rule=rule, subject="S1",
                          start=datetime(2025, 1, 1, tzinfo=CST),
                          time=datetime(2025, 1, 1, tzinfo=CST),
                          evidence=[EvidenceRef(media_type="image/png", name=f"{rule}.png",
                                                pending=spec)]))
    events = [_ClueEvent(c.model_dump_json().encode()) for c in clues]
    try:
        assert asyncio.run(drawer.handle(events)) == 2
    finally:
        drawer.pool.close()
    sent = {c.rule: c for _, c in topic.sent}
    assert [(e.content, e.pending) for e in sent["good"].evidence] == [(plot.render(), None)]
    assert sent["bad"].evidence == []
    again = [_ClueEvent(c.model_dump_json().encode()) for c in sent.values()]
    assert asyncio.run(drawer.handle(again)) == 0


class _ClueEvent:
    def __init__(self, value: bytes) -> None:
        self.value = value


def test_pool_children_exit_when_the_worker_is_killed(tmp_path: Any) -> None:
    """A worker SIGKILLed cannot close its pool: the children notice and exit."""
    import subprocess
    import sys
    import time

    script = (
        "import os, sys\n"
        "from datetime import datetime, timezone\n"
        "from detectors.plots import SeriesPlot\n"
        "from streams.evidence_pool import PlotPool\n"
        "pool = PlotPool(1)\n"
        "plot = SeriesPlot('t', [datetime(2025, 1, 1, tzinfo=timezone.utc)], [1.0])\n"
        "pool.submit(plot).result(timeout=120)\n"
        "print(' '.join(str(p) for p in pool._pool._processes), flush=True)\n"
        "sys.stdin.read()\n")
    worker = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        children = [int(p) for p in worker.stdout.readline().split()]
        assert children and all(os.path.exists(f"/proc/{p}") for p in children)
    finally:
        worker.kill()
        worker.wait()
    deadline = time.monotonic() + 20
    while any(_running(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in children if _running(p)]
    for pid in left:  # ours; do not leave them behind if the check fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"pool children {left} outlived their worker"


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
