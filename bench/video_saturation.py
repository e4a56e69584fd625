"""Saturation of the video path: the most cameras the RTSP ingester and the worker analyse
in full at 2 fps on this machine (issue 19, point 1: latency is measured at half of it).

Why a stepped search read from the worker's own counters: the video agent takes frames
off Kafka at once and queues them per camera (``streams.video``, a lane of 8 frames, the
oldest dropped when full), so a worker that falls behind shows no Kafka lag: it shows
fewer frames analysed than the cameras deliver, dropped frames, and a growing
capture -> analysis lag. The worker serves those as Prometheus metrics
(``OFFSITE_WORKER_METRICS_PORT``); each step adds cameras, waits for them to stream, and
reads the counters over a window split in two halves.

A step *keeps up* (``keeps_up``) when analysed frames/s >= ``KEEP_UP`` x cameras x 2 fps,
no frame was dropped, and the mean lag of the second half is at most ``LAG_GROWTH_S``
(one sampling period) above the first half's (the backlog does not grow). After the first
step that does not keep up, up to ``REFINE`` more steps halve the gap to the last that did;
``saturation`` is the most cameras that kept up below every count that did not.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

RATE = 2.0  # frames/s per camera the ingester samples for analysis, as deployed
KEEP_UP = 0.95
LAG_GROWTH_S = 1.0 / RATE
STEPS = (1, 2, 4, 8, 12, 16, 24, 32, 48)
QUICK_STEPS = (1, 4, 8, 16, 24, 32)
REFINE = 2  # steps between the last count that kept up and the first that did not


def keeps_up(cameras: int, analysed_fps: float, dropped: int, lag_first_s: float | None,
             lag_last_s: float | None) -> bool:
    """Did the pipeline analyse every camera's frames without a growing backlog?"""
    if cameras < 1 or analysed_fps < KEEP_UP * cameras * RATE or dropped > 0:
        return False
    if lag_first_s is None or lag_last_s is None:
        return False  # no frame analysed in a half: it did not keep up
    return lag_last_s - lag_first_s <= LAG_GROWTH_S


def saturation(steps: Sequence[Step]) -> int:
    """The most cameras that kept up, below every step that did not (0: none kept up)."""
    failed = min((step.cameras for step in steps if not step.keeps_up), default=None)
    return max((step.cameras for step in steps
                if step.keeps_up and (failed is None or step.cameras < failed)), default=0)


def found(steps: Sequence[Step]) -> bool:
    """Did a step fall behind (else the saturation is only a lower bound)?"""
    return any(not step.keeps_up for step in steps)


def next_between(steps: Sequence[Step]) -> int | None:
    """After a step fell behind: the camera count halfway between the most that kept up
    and the fewest that did not (None: they are adjacent, or none fell behind)."""
    failed = min((step.cameras for step in steps if not step.keeps_up), default=None)
    if failed is None:
        return None
    mid = (saturation(steps) + failed) // 2
    return mid if saturation(steps) < mid < failed else None


def paced_cameras(saturated: int) -> int:
    """Half of saturation, rounded down, at least one camera."""
    return max(1, saturated // 2)


@dataclass(frozen=True)
class Sample:
    """The worker's video counters at one moment."""

    at: float
    analysed: float
    dropped: float
    lag_sum: float
    lag_count: float
    backlog: float
    streaming: float = 0.0

    @classmethod
    def parse(cls, text: str, at: float) -> Sample:
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[sample.name] = sample.value
        return cls(at, values.get("offsite_video_frames_analysed_total", 0.0),
                   values.get("offsite_video_frames_dropped_total", 0.0),
                   values.get("offsite_video_frame_lag_seconds_sum", 0.0),
                   values.get("offsite_video_frame_lag_seconds_count", 0.0),
                   values.get("offsite_video_lane_backlog_frames", 0.0),
                   values.get("offsite_video_cameras_streaming", 0.0))


def _mean_lag(a: Sample, b: Sample) -> float | None:
    count = b.lag_count - a.lag_count
    return (b.lag_sum - a.lag_sum) / count if count > 0 else None


@dataclass(frozen=True)
class Step:
    """What the worker did with ``cameras`` cameras over one window."""

    cameras: int
    window_s: float
    analysed_fps: float
    dropped: int
    lag_first_s: float | None
    lag_last_s: float | None
    backlog_end: int
    cores: dict[str, float] | None = None  # CPU cores each process used over the window

    @classmethod
    def of(cls, cameras: int, first: Sample, mid: Sample | None, last: Sample,
           cores: dict[str, float] | None = None) -> Step:
        """From samples at the start, the middle (None: no halves) and the end."""
        window = max(last.at - first.at, 1e-9)
        halves = (_mean_lag(first, mid), _mean_lag(mid, last)) if mid is not None else (
            _mean_lag(first, last),) * 2
        return cls(cameras, round(window, 1), round((last.analysed - first.analysed) / window, 2),
                   int(last.dropped - first.dropped),
                   *(round(h, 3) if h is not None else None for h in halves),
                   int(last.backlog), cores)

    @property
    def keeps_up(self) -> bool:
        return keeps_up(self.cameras, self.analysed_fps, self.dropped, self.lag_first_s,
                        self.lag_last_s)

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "expected_fps": self.cameras * RATE, "keeps_up": self.keeps_up}


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far (Linux ``/proc``) of each process, with its children that have
    ended (the worker's ffmpeg clip encoders), and ``machine``: of every process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"machine": sum(int(v) for v in Path("/proc/stat").read_text().split()[1:9]
                          if v.isdigit()) / tick - _idle(tick)}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
    return out


def _idle(tick: int) -> float:
    cpu = Path("/proc/stat").read_text().split()[1:9]
    return (int(cpu[3]) + int(cpu[4])) / tick  # idle, iowait


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerMetrics:
    """Reads the worker's /metrics on the loopback port it was given."""

    def __init__(self, port: int) -> None:
        self.port = port

    def scrape(self) -> Sample:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            return Sample.parse(r.read().decode(), time.monotonic())

    def streaming(self, cameras: int, timeout_s: float) -> None:
        """Wait until frames of at least ``cameras`` cameras reach the worker (new ones
        take a few seconds to connect; a pipeline that cannot start them times out)."""
        deadline = time.monotonic() + timeout_s
        while self.scrape().streaming < cameras and time.monotonic() < deadline:
            time.sleep(0.5)

    def drain(self, timeout_s: float) -> None:
        """Wait until the lanes' queues are empty (after a step that fell behind)."""
        deadline = time.monotonic() + timeout_s
        while self.scrape().backlog > 0 and time.monotonic() < deadline:
            time.sleep(0.5)


def search(metrics: WorkerMetrics, set_cameras: Callable[[int], None], quick: bool,
           pids: dict[str, int]) -> list[Step]:
    """Step through ``STEPS`` (``QUICK_STEPS``) cameras until a step does not keep up, then
    halve the gap between the last good and the first bad count (``REFINE`` times)."""
    settle_s, window_s = (3.0, 14.0) if quick else (5.0, 30.0)
    steps: list[Step] = []

    def step(cameras: int) -> Step:
        set_cameras(cameras)
        metrics.drain(timeout_s=30.0)  # what a step that fell behind left in the lanes
        metrics.streaming(cameras, timeout_s=30.0)  # the new cameras connect and stream
        time.sleep(settle_s)
        first, cpu = metrics.scrape(), cpu_seconds(pids)
        time.sleep(window_s / 2)
        mid = metrics.scrape()
        time.sleep(window_s / 2)
        last, used = metrics.scrape(), cpu_seconds(pids)
        cores = {k: round((used[k] - cpu[k]) / (last.at - first.at), 2) for k in used if k in cpu}
        steps.append(Step.of(cameras, first, mid, last, cores))
        print(f"saturation step: {steps[-1].row()}", file=sys.stderr, flush=True)
        return steps[-1]

    for cameras in QUICK_STEPS if quick else STEPS:
        if not step(cameras).keeps_up:
            break
    for _ in range(REFINE):
        between = next_between(steps)
        if between is None:
            break
        step(between)
    return steps
