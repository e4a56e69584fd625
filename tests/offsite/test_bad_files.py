"""Bad files give clear errors: ``offsite satellite detect`` on malformed GeoTIFFs and
``offsite video analyze`` on truncated or random videos exit 2 with one ``error:`` line
that names the file and the problem, and no Python traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TAIZHOU = ROOT / "samples" / "satellite" / "taizhou"
VIDEO = ROOT / "samples" / "video"
BANDS = "green=2,red=3,nir=4,swir1=5"


def offsite(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "offsite", *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def assert_clear_error(run: subprocess.CompletedProcess[str], name: str, problem: str) -> None:
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    assert "Traceback" not in run.stderr and "╭" not in run.stderr, run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, run.stderr
    assert name in errors[0] and problem in errors[0], errors[0]


def _half(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[:len(data) // 2])
    return dst


@pytest.mark.parametrize("kind", ["truncated", "random", "text"])
def test_satellite_detect_refuses_malformed_geotiffs(tmp_path: Path, kind: str) -> None:
    bad = tmp_path / f"{kind}.tif"
    if kind == "truncated":
        _half(TAIZHOU / "taizhou_2003_6band.tif", bad)
    elif kind == "random":
        bad.write_bytes(os.urandom(4096))
    else:
        bad.write_text("this is not a GeoTIFF\n")
    run = offsite("satellite", "detect", TAIZHOU / "taizhou_2000_6band.tif", bad,
                  "--out", tmp_path / "out.geojson", "--bands", BANDS)
    assert_clear_error(run, bad.name, "not a readable GeoTIFF")
    assert not (tmp_path / "out.geojson").exists()


def test_satellite_detect_refuses_a_geotiff_whose_data_is_cut(tmp_path: Path) -> None:
    """Header and directory intact (strips written first), pixel data cut: the file opens,
    the read fails half way; GDAL's own message names the file."""
    import rasterio

    full = tmp_path / "full.tif"
    with rasterio.open(TAIZHOU / "taizhou_2003_6band.tif") as src:
        profile = {**src.profile, "tiled": False, "compress": None}
        with rasterio.open(full, "w", **profile) as dst:
            dst.write(src.read())
    cut = _half(full, tmp_path / "cut.tif")
    run = offsite("satellite", "detect", TAIZHOU / "taizhou_2000_6band.tif", cut,
                  "--out", tmp_path / "out.geojson", "--bands", BANDS)
    assert_clear_error(run, "cut.tif", "cannot read raster data")


@pytest.mark.parametrize("kind", ["half_moov_at_end", "half_moov_first", "random"])
def test_video_analyze_refuses_truncated_and_random_files(tmp_path: Path, kind: str) -> None:
    bad = tmp_path / f"{kind}.mp4"
    if kind == "half_moov_at_end":  # index at the end: the half cannot even be opened
        _half(VIDEO / "logo_480p.mp4", bad)
        problem = "cannot open video"
    elif kind == "half_moov_first":  # opens, decodes the first half, then stops
        _half(VIDEO / "person_room.mp4", bad)
        problem = "truncated or corrupt video: decoded"
    else:
        bad.write_bytes(os.urandom(50_000))
        problem = "cannot open video"
    run = offsite("video", "analyze", bad, "--fps", "1", "--out", tmp_path / "clues.jsonl")
    assert_clear_error(run, bad.name, problem)


def test_video_analyze_still_accepts_whole_files(tmp_path: Path) -> None:
    run = offsite("video", "analyze", VIDEO / "logo_480p.mp4", "--out", tmp_path / "c.jsonl")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "error:" not in run.stderr
