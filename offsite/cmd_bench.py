"""``offsite bench env|video|satellite|satellite-speed|satellite-quality|storage|power|fires``:
one JSON line of figures each (most take ``--quick``).

Register in ``offsite/cli.py`` with ``app.add_typer(cmd_bench.app, name="bench")``.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import re
import sys
import tempfile
import time
from types import ModuleType
from typing import Any

import typer

app = typer.Typer(no_args_is_help=True, help="Benchmarks: one JSON line of figures each.")
QUICK = typer.Option(False, "--quick", help="a smaller run that finishes in under 2 minutes")


def _bench(name: str) -> ModuleType:
    """A module of ``bench/`` by name: the benchmarks sit above every layer and nothing
    imports them, the CLI included (see .importlinter)."""
    return importlib.import_module(f"bench.{name}")


def _emit(figures: dict[str, Any]) -> None:
    typer.echo(json.dumps(figures))


def _numbers(text: str, pattern: str) -> list[float]:
    return [float(m.replace(",", "")) for m in re.findall(pattern, text)]


@app.command()
def env(quick: bool = QUICK) -> None:
    """MQTT -> Kafka -> Faust -> PostgreSQL: readings/s, latencies, ratio to binary COPY."""
    main = _bench("bench_env_pipeline").main

    _emit(main(quick=quick))


@app.command("env-neighbours")
def env_neighbours(quick: bool = QUICK,
                   seeds: int = typer.Option(1, help="injection runs (seeds 15, 16, ...)"),
                   sweep: bool = typer.Option(False, "--sweep", help="the parameter sweep on"
                                              " the real record instead"),
                   only: str | None = typer.Option(None, help="--sweep: only the rows that"
                                                   " set this parameter")) -> None:
    """Neighbour rules on the 12 real Beijing stations: clues per station-year, recall."""
    bench = _bench("bench_env_neighbours")

    _emit(bench.sweep(quick, only) if sweep else bench.main(quick=quick, seeds=seeds))


@app.command()
def capacity(full: bool = typer.Option(False, "--full", help="the longer env and video runs")
             ) -> None:
    """The capacity plan's three per-core figures measured in one run (env readings, cameras
    at 2 fps, Sentinel-2 tiles) and the province's sizing from them."""
    _emit(_bench("bench_capacity").main(["--full"] if full else []))


@app.command()
def power() -> None:
    """Power rules on the real IMDELD factory series (../shared/data): real clues, and
    precision and recall on injected treatment-off episodes."""
    _emit(_bench("bench_power_quality").main())


@app.command()
def storage(quick: bool = QUICK) -> None:
    """p95 of the monitoring-center clue query with readings and clues loaded."""
    main = _bench("bench_storage").main

    _emit(main(quick=quick))


@app.command()
def video(quick: bool = QUICK,
          latency: bool = typer.Option(False, help="clue latency through RTSP, ingester and "
                                       "worker (bench/bench_video_latency.py)"),
          cameras: int = typer.Option(0, help="--latency: cameras on the stream; 0: half "
                                      "of the saturation found in the same run"),
          compare: bool = typer.Option(False, help="--latency: the settings of before too")
          ) -> None:
    """Decode vs detector CPU per core on 720p H.264, and cameras per core at 2 fps
    (wraps bench/bench_video.py); with ``--latency``: capture -> clue row of planted events."""
    if latency:
        _emit(_bench("bench_video_latency").main(quick=quick, cameras=cameras,
                                                 compare=compare))
        return
    bench_video = _bench("bench_video")

    out = io.StringIO()
    t = time.perf_counter()
    argv = sys.argv
    try:
        sys.argv = ["bench_video"]
        with contextlib.redirect_stdout(out):
            bench_video.main()
    finally:
        sys.argv = argv
    text = out.getvalue()
    decode = _numbers(text, r"decode 1280x720 H\.264: ([\d.]+) frames/s")
    ratios = _numbers(text, r"detector/decode CPU for the same video: ([\d.]+)")
    det = _numbers(text, r"detectors, [^:]+: ([\d.]+) frames/s")
    per_s = _numbers(text, r"([\d.]+) ms per s of video")
    figures: dict[str, Any] = {"benchmark": "video", "quick": quick,
                               "decode_fps_per_core": decode[0] if decode else None,
                               "detector_fps_per_core": det,
                               "detector_to_decode_ratio": ratios,
                               "goal_ratio": 0.25, "goal_cameras": 24,
                               "seconds": round(time.perf_counter() - t, 1)}
    if per_s and ratios:
        # cameras per 2 cores at the clip's rate: decode + default detectors per video second
        figures["cameras_2_cores_default"] = round(2000 / (per_s[0] * (1 + ratios[0])), 1)
    capacity = bench_video.camera_capacity(seconds=40.0 if quick else None)  # issue 19.4
    figures["cameras_per_core_2fps"] = capacity["cameras_per_core_2fps"]
    figures["capacity_2fps"] = capacity
    _emit(figures)


@app.command()
def satellite(quick: bool = QUICK,
              size: int = typer.Option(0, help="pixels per side; default 10980 (2048 quick)")
              ) -> None:
    """Peak RSS and time of detect_files on a synthetic pair (bench_satellite_memory.py)."""
    bench_satellite_memory = _bench("bench_satellite_memory")

    size = size or (2048 if quick else 10980)
    out = io.StringIO()
    argv = sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sys.argv = ["bench_satellite_memory", str(size), tmp]
            with contextlib.redirect_stdout(out):
                bench_satellite_memory.main()
        finally:
            sys.argv = argv
    text = out.getvalue()
    secs = _numbers(text, r"polygons in ([\d.]+) s")
    rss = _numbers(text, r"peak RSS ([\d.]+) MiB")
    polys = _numbers(text, r"size \d+: (\d+) polygons")
    mpx = round(size * size / 1e6 / secs[0], 2) if secs else None
    _emit({"benchmark": "satellite", "quick": quick, "size": size,
           "polygons": int(polys[0]) if polys else None, "detect_s": secs[0] if secs else None,
           "mpx_per_s": mpx, "peak_rss_mib": rss[0] if rss else None,
           "goal_peak_rss_mib": 1000})


@app.command("satellite-speed")
def satellite_speed(quick: bool = QUICK,
                    rounds: int = typer.Option(4, help="alternating read/detect rounds"),
                    s2: bool = typer.Option(False, "--s2", help="measure a 10980² pair too")
                    ) -> None:
    """detect_files against the raw block read (4000² pair; 2000² quick) and Sentinel-2
    tiles per hour per core (extrapolated, or measured with --s2)."""
    bench = _bench("bench_satellite_speed")

    size = 2000 if quick else 4000
    with tempfile.TemporaryDirectory() as tmp:
        argv = [str(size), tmp, str(2 if quick else rounds)] + (["--s2"] if s2 else [])
        _emit({**bench.main(argv), "quick": quick, "goal_ratio": 0.5})


@app.command("satellite-quality")
def satellite_quality(commit: str = typer.Option(
        "624a391", help="the older detector to compare (git commit of this repository)")
                      ) -> None:
    """Precision/recall/F1 per labelled pair: older detector, naive baseline, this one."""
    _emit(_bench("bench_satellite_quality").main(commit))


@app.command()
def fires(quick: bool = QUICK) -> None:
    """Fire events on the real FIRMS files: counts and time per step (bench_fires.py)."""
    _emit(_bench("bench_fires").main(quick=quick))
