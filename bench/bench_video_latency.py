"""Video clue latency: capture of the frame that completes a rule -> the clue's row (issue 19.1).

The same way as env: the real path end to end. A synthetic camera scene with planted
events (a static textured room; a bright square enters at 2.0 s, crosses for 3 s and
leaves, every ``PERIOD_S`` = 10 s) is encoded to H.264 and served by a real RTSP server
(``offsite.rtsp_server``: rtsp-server-perl fed by ffmpeg, looping); ``offsite ingest rtsp``
samples it (2 fps, as deployed) and publishes ``video.frames``; the ``offsite worker``'s
video agent runs the camera's detectors (the registry's default config: tamper, a
full-frame motion zone, person detection, evidence snapshots and clips) and the clue exit
sends the motion clue to the clues sink. Services are embedded (Tansu, PostgreSQL,
Mosquitto) in ``.state/bench-video``.

Latency of one event = the moment its ``open`` event row is seen in ``clue_events`` (polled
every ``POLL_S``; it is written right after the clue row, so this is conservative) minus
the clue's ``time``, which is the capture time of the frame that completed the rule (the
ingester stamps each frame with the wall clock at grab; same machine, same clock).

Floor: the planted events in the measured window (what a detector that misses nothing
opens: one per camera and ``PERIOD_S``; an episode is counted by the capture time of the
frame that opened it, which repeats with the same period, and its row may arrive up to
``GRACE_S`` after the window); ``detected_ratio_to_floor`` = motion episodes opened /
events planted. The latency
itself has no separate floor run: the sampling period (0.5 s) bounds how early a rule can
complete after the event starts, and that part is not in the figure (it starts at capture).

Load, in the same run (issue 19.1 asks for the latency "at half of saturation"): first a
saturation search (``bench.video_saturation``): 1, 4, 8, 16, 24, 32 ... cameras read the
same RTSP stream (each its own capture, decode, sampling and analyzer lane), added step by
step to the registry, until a step no longer keeps up (analysed frames/s < 95 % of
cameras x 2 fps, dropped frames, or a growing capture -> analysis lag, read from the
worker's Prometheus metrics); ``saturation_cameras`` is the last step that kept up
(``saturation_found`` false: none fell behind, so it is a lower bound). Then those cameras
are removed from the registry, the lanes drain, and the latency is measured on
``paced_cameras`` = max(1, saturation // 2) new ones (new analyzers: one that lived
through the overloaded steps may keep a tamper reference learned then), once each has
opened its first motion clue. ``--cameras N`` skips
the search and measures N cameras. ``--compare`` then runs with the settings of before
issue 19 (``BEFORE``: Faust's 1.5 s fetch wait, 0.5 s batch wait of the clues sink) at
the same number of cameras, fresh services, and prints both. Run: ``.venv/bin/python -m
offsite bench video --latency [--quick] [--cameras N] [--compare]``; ``--quick`` takes
about 4-6 minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psycopg

from bench.bench_env_pipeline import pct, spawn
from bench.video_saturation import (
    RATE,
    Step,
    WorkerMetrics,
    found,
    free_port,
    paced_cameras,
    saturation,
    search,
)
from offsite.rtsp_server import RtspTestServer
from offsite.services import EmbeddedServices, remove_state
from storage.migrate import migrate
from storage.registry_listen import CHANNEL

STATE = Path(".state/bench-video")
PERIOD_S = 10.0
ENTER_S, LEAVE_S = 2.0, 5.0
FPS = 10
SIZE = (640, 360)
POLL_S = 0.05
GRACE_S = 5.0  # a clue later than this after the window closes counts as missed


def make_clip(path: Path) -> Path:
    """``PERIOD_S`` seconds of H.264: a static textured room, one square crossing it."""
    rng = np.random.default_rng(19)
    room = cv2.GaussianBlur(rng.integers(60, 140, (SIZE[1], SIZE[0], 3), dtype=np.uint8),
                            (0, 0), 3)
    cv2.rectangle(room, (40, 200), (600, 330), (90, 80, 70), -1)  # a table, some structure
    ffmpeg = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
         "-pix_fmt", "bgr24", "-s", f"{SIZE[0]}x{SIZE[1]}", "-r", str(FPS), "-i", "-",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", str(FPS), "-bf", "0", str(path)],
        stdin=subprocess.PIPE)
    assert ffmpeg.stdin is not None
    for k in range(int(PERIOD_S * FPS)):
        t = k / FPS
        frame = room.copy()
        if ENTER_S <= t < LEAVE_S:
            x = int(60 + (t - ENTER_S) / (LEAVE_S - ENTER_S) * 440)
            cv2.rectangle(frame, (x, 120), (x + 90, 230), (235, 235, 235), -1)
        ffmpeg.stdin.write(frame.tobytes())
    ffmpeg.stdin.close()
    if ffmpeg.wait() != 0:
        raise RuntimeError("ffmpeg could not encode the planted-events clip")
    return path


def opened(conn: psycopg.Connection, cameras: list[str], since: datetime
           ) -> list[tuple[str, datetime]]:
    return conn.execute(
        "SELECT e.clue_id, e.time FROM clue_events e JOIN clues c USING (clue_id)"
        " WHERE e.state = 'open' AND e.kind = 'motion' AND c.subject = ANY(%s)"
        " AND e.time >= %s", (cameras, since)).fetchall()


def first_clue(url: str, cameras: list[str], warm_s: float) -> None:
    """Wait until every camera has opened a motion clue: services, ingester and worker are
    up and each analyzer has learned its background."""
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + warm_s
        while {row[0] for row in conn.execute(
                "SELECT DISTINCT c.subject FROM clue_events e JOIN clues c USING (clue_id)"
                " WHERE e.state = 'open' AND e.kind = 'motion' AND c.subject = ANY(%s)",
                (cameras,))} != set(cameras):
            if time.monotonic() > deadline:
                raise RuntimeError("a camera opened no motion clue during the warm-up")
            time.sleep(0.2)


def measure(url: str, cameras: list[str], seconds: float) -> tuple[list[float], int, float]:
    """Latencies of motion clues whose frame was captured in the window, episodes, and the
    window length. After the window, polling goes on for up to ``GRACE_S`` so that the
    clues of events near its end, the slowest ones, are counted too (not cut off)."""
    with psycopg.connect(url, autocommit=True) as conn:
        start = datetime.now(UTC)
        seen: dict[str, float] = {}
        latencies: list[float] = []
        end = time.monotonic() + seconds
        closed: datetime | None = None
        while time.monotonic() < end + GRACE_S:
            if closed is None and time.monotonic() >= end:
                closed = datetime.now(UTC)
            for clue_id, moment in opened(conn, cameras, start):
                if clue_id not in seen and (closed is None or moment < closed):
                    seen[clue_id] = time.time()
                    latencies.append(seen[clue_id] - moment.timestamp())
            time.sleep(POLL_S)
        window = ((closed or datetime.now(UTC)) - start).total_seconds()
    return latencies, len(seen), window


# the settings before issue 19: Faust's own fetch wait and the sinks' 0.5 s batch wait
BEFORE = {"OFFSITE_CONSUMER_FETCH_WAIT_S": "1.5", "OFFSITE_CLUE_BATCH_SECONDS": "0.5"}


def main(quick: bool = False, cameras: int = 0, seconds: float | None = None,
         compare: bool = False) -> dict[str, Any]:
    """One run: the saturation search, then the latency at half of it (``cameras`` > 0:
    that many cameras, no search). ``compare``: then the settings of before (``BEFORE``)
    at the same number of cameras, fresh services, side by side in one JSON line."""
    after = run(quick, cameras, seconds, {})
    if not compare:
        return after
    before = run(quick, after["paced_cameras"], seconds, BEFORE)
    return {**after, "before": {k: v for k, v in before.items()
                                if k.startswith(("video_", "detected_", "episodes_"))},
            "before_settings": BEFORE}


def register(url: str, ids: list[str], rtsp_url: str) -> None:
    """Exactly ``ids`` on the stream; the registry notice makes the ingester sync now."""
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM cameras WHERE id LIKE 'BENCH-CAM-%%' AND NOT id = ANY(%s)",
                     (ids,))
        for cam in ids:
            conn.execute("INSERT INTO cameras (id, url, config) VALUES (%s, %s, '{}')"
                         " ON CONFLICT (id) DO NOTHING", (cam, rtsp_url))
        conn.execute("SELECT pg_notify(%s, 'camera')", (CHANNEL,))


def camera_ids(n: int, prefix: str = "") -> list[str]:
    return [f"BENCH-CAM-{prefix}{k:02d}" for k in range(n)]


def run(quick: bool, cameras: int, seconds: float | None, extra_env: dict[str, str]
        ) -> dict[str, Any]:
    seconds = seconds or (40.0 if quick else 120.0)
    remove_state(STATE)
    logs = STATE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    clip = make_clip((STATE / "planted.mp4").resolve())
    procs: dict[str, subprocess.Popen] = {}
    server = RtspTestServer((STATE / "rtsp").resolve(), clip)
    load = os.getloadavg()[0]
    metrics = WorkerMetrics(free_port())
    steps: list[Step] = []
    with EmbeddedServices(STATE / "services").start() as svc:
        migrate(svc.database_url)
        server.start()
        try:
            env = {**os.environ, **svc.env(),
                   "OFFSITE_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
                   "OFFSITE_WORKER_METRICS_PORT": str(metrics.port), **extra_env}
            register(svc.database_url, camera_ids(cameras or 1), server.url)
            procs["worker"] = spawn(env, logs, "worker", "worker")
            procs["ingest-rtsp"] = spawn(env, logs, "ingest-rtsp", "ingest", "rtsp",
                                         "--transport", "udp")
            first_clue(svc.database_url, camera_ids(cameras or 1), warm_s=180.0)
            if not cameras:  # 1. saturation: the most cameras analysed in full at 2 fps
                steps = search(metrics, lambda n: register(svc.database_url, camera_ids(n),
                                                           server.url), quick,
                               {name: proc.pid for name, proc in procs.items()})
                cameras = paced_cameras(saturation(steps))
                # fresh cameras: the search overloaded the machine on purpose, and an
                # analyzer that lived through it may keep what it learned then
                register(svc.database_url, [], server.url)
                metrics.drain(timeout_s=30.0)
                register(svc.database_url, camera_ids(cameras, "L"), server.url)
                first_clue(svc.database_url, camera_ids(cameras, "L"), warm_s=120.0)
            # 2. latency at that load
            ids = camera_ids(cameras, "L" if steps else "")
            before = metrics.scrape()
            latencies, episodes, window = measure(svc.database_url, ids, seconds)
            paced = Step.of(cameras, before, None, metrics.scrape())
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
            server.stop()
    planted = cameras * int(window // PERIOD_S)
    p99 = pct(latencies, 0.99)
    ratio = round(episodes / planted, 3) if planted else None
    return {"benchmark": "video-latency", "quick": quick, "load_average_1m": round(load, 2),
            "saturation_cameras": saturation(steps) if steps else None,
            "saturation_found": found(steps) if steps else None,
            "saturation_steps": [step.row() for step in steps],
            "paced_cameras": cameras, "paced_step": paced.row(), "rate_fps": RATE,
            "window_s": round(window, 1), "events_planted": planted,
            "episodes_opened": episodes, "detected_ratio_to_floor": ratio,
            "video_clue_latency_p50_s": pct(latencies, 0.5),
            "video_clue_latency_p99_s": p99, "clue_latency_p99_s": p99,
            "video_clue_latency_max_s": round(max(latencies), 4) if latencies else None,
            "clue_samples": len(latencies), "poll_s": POLL_S, "goal_clue_p99_s": 1.0}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cameras", type=int, default=0,
                        help="cameras of the latency phase; 0: half of the saturation found")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--compare", action="store_true",
                        help="run with the settings of before too, side by side")
    args = parser.parse_args()
    print(json.dumps(main(args.quick, args.cameras, args.seconds, args.compare)))
