"""Acquisition dates and sensors from tags and file names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from detectors.satellite_meta import date_from_name, scene_date, sensor_from_name


def test_dates_from_names() -> None:
    assert date_from_name("LE70350322008166EDC00_b3.tif")[0] == "2008-06-14"
    assert date_from_name("LC08_L2SP_119038_20200412_20200822_02_T1_SR_B4.TIF")[0] == "2020-04-12"
    assert date_from_name("S2A_MSIL2A_20210305T023551_N0214_R089_T51STR.tif")[0] == "2021-03-05"
    assert date_from_name("scene_2019-07-21.tif")[0] == "2019-07-21"
    assert date_from_name("taizhou_2000_6band.tif")[0] == "2000"
    assert date_from_name("nodate_6band.tif") is None
    assert sensor_from_name("LT50350322009176PAC01_b3.tif") == "landsat-5"
    assert sensor_from_name("S2B_MSIL2A_20210305T023551_x.tif") == "sentinel-2b"


def test_date_from_tags_wins_over_name(tmp_path: Path) -> None:
    path = tmp_path / "taizhou_2000.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8",
                       crs="EPSG:32651", transform=from_origin(0, 0, 30, 30)) as dst:
        dst.write(np.zeros((1, 4, 4), np.uint8))
        dst.update_tags(ACQUISITION_DATE="2001-05-02T02:30:00Z")
    found = scene_date(path)
    assert found is not None and found.text == "2001-05-02" and found.source.startswith("tag:")
    assert found.time.hour == 2
