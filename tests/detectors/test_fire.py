"""Fire events from real NASA FIRMS MODIS detections (``samples/satellite/firms``).

MODIS Collection 6.1 NRT Hotspot / Active Fire Detections MCD14DL, NASA FIRMS,
doi:10.5067/FIRMS/MODIS/MCD14DL.NRT.0061 -- read by path, never copied.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from contract.records import FireDetection
from detectors.fire import FireParams, FireZones, dedupe, find_events, group
from detectors.fire_firms import FirmsError, looks_like_firms, parse_firms

ROOT = Path(__file__).resolve().parents[2]
FIRMS = ROOT / "samples" / "satellite" / "firms"
SHANDONG = FIRMS / "modis_2022-05-28_06-04_shandong_box.csv"
EAST_CHINA = FIRMS / "modis_2022-05-28_06-04_east_china_box.csv"
P = FireParams()


def real() -> list[FireDetection]:
    return parse_firms(SHANDONG.read_bytes()).detections


def square(lon: float, lat: float, half: float, **props: object) -> dict:
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half],
            [lon - half, lat + half], [lon - half, lat - half]]
    return {"type": "Feature", "properties": props,
            "geometry": {"type": "Polygon", "coordinates": [ring]}}


def test_real_modis_file_parses_every_row_in_utc() -> None:
    rows = list(csv.DictReader(io.StringIO(SHANDONG.read_text())))
    parsed = parse_firms(SHANDONG.read_bytes())
    assert parsed.instrument == "MODIS" and not parsed.bad_rows
    assert len(parsed.detections) == len(rows)
    first, row = parsed.detections[0], rows[0]
    assert first.lat == float(row["latitude"]) and first.lon == float(row["longitude"])
    assert first.time == datetime.strptime(row["acq_date"] + row["acq_time"],
                                           "%Y-%m-%d%H%M").replace(tzinfo=UTC)
    assert first.confidence == int(row["confidence"]) / 100
    assert looks_like_firms(SHANDONG.read_bytes()[:200])


def test_viirs_columns_and_letter_confidence() -> None:
    text = ("latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,"
            "confidence,version,bright_ti5,frp,daynight\n"
            "36.1,117.2,330.1,0.39,0.36,2022-06-01,536,N,VIIRS,h,2.0NRT,290.1,5.2,D\n"
            "36.2,117.3,310.0,0.40,0.37,2022-06-01,05:36,N,VIIRS,l,2.0NRT,288.0,1.1,D\n"
            "36.3,117.4,320.0,0.41,0.38,2022-06-01,0536,N,VIIRS,nominal,2.0NRT,289.0,2.0,D\n")
    parsed = parse_firms(text.encode())
    assert parsed.instrument == "VIIRS"
    assert [d.confidence for d in parsed.detections] == [0.9, 0.3, 0.65]
    assert {d.time for d in parsed.detections} == {datetime(2022, 6, 1, 5, 36, tzinfo=UTC)}
    assert parsed.detections[0].scan == 0.39 and parsed.detections[0].brightness == 330.1


def test_not_firms_is_refused_and_a_bad_row_alone() -> None:
    with pytest.raises(FirmsError, match="missing column"):
        parse_firms(b"id,name,lon,lat\n1,a,117,36\n")
    with pytest.raises(FirmsError, match="missing column"):
        parse_firms(b"\xff\xfe\x00l\x00a")  # UTF-16: no header this parser can read
    lines = SHANDONG.read_text().splitlines()
    broken = "\n".join([lines[0], lines[1], "91.5,117.0,318,1,1,2022-05-29,0300,T,44,6.1NRT,"
                        "299,7,D", lines[2], "37.1,x", lines[3]]) + "\n"
    damaged = broken.encode() + lines[4].encode().replace(b"6.1NRT", b"6.1\xffNRT") + b"\n"
    parsed = parse_firms(damaged)
    assert len(parsed.detections) == 3
    assert [b.line for b in parsed.bad_rows] == [3, 5, 7]
    assert "less than or equal to 90" in parsed.bad_rows[0].reason
    assert parsed.bad_rows[1].reason == "wrong number of columns"
    assert "not UTF-8" in parsed.bad_rows[2].reason
    with pytest.raises(FirmsError, match="no usable row"):
        parse_firms(f"{lines[0]}\n37.1,x\n".encode())


def test_overlapping_downloads_add_no_events() -> None:
    east = parse_firms(EAST_CHINA.read_bytes()).detections
    both = find_events([*real(), *east], P)
    alone = find_events(east, P)
    assert both.duplicates == alone.duplicates + len(real())
    assert [e.to_json() for e in both.events] == [e.to_json() for e in alone.events]


def test_same_observation_across_satellites_is_one_but_adjacent_pixels_are_two() -> None:
    d = real()[0]
    viirs = d.model_copy(update={"satellite": "N", "instrument": "VIIRS", "scan": 0.38,
                                 "track": 0.36, "lat": d.lat + 0.002, "confidence": 0.9,
                                 "time": d.time + timedelta(minutes=5)})
    kept, dropped = dedupe([d, viirs], P)
    assert dropped == 1 and kept == [viirs]  # the better look stays
    neighbour = d.model_copy(update={"lat": d.lat + d.track / 110.574})  # next scan line
    kept, dropped = dedupe([d, neighbour], P)
    assert dropped == 0 and len(group(kept, P)) == 1  # two pixels, one fire


def test_events_split_after_a_long_silence() -> None:
    d = real()[0]
    later = d.model_copy(update={"time": d.time + timedelta(hours=P.group_hours + 1)})
    soon = d.model_copy(update={"time": d.time + timedelta(hours=3), "satellite": "A"})
    assert len(group([d, later], P)) == 2
    assert len(group([d, soon, later], P)) == 1  # followed from look to look


def test_persistent_heat_and_heat_source_zones_are_masked() -> None:
    d = real()[0]
    daily = [d.model_copy(update={"time": d.time + timedelta(days=k),
                                  "lon": d.lon + 0.001 * k}) for k in range(P.persistent_days)]
    result = find_events(daily, P)
    assert len(result.events) == P.persistent_days
    assert result.events[-1].masked.startswith("persistent_heat")
    assert result.events[0].masked is None  # the first day alone is not yet persistent
    zones = FireZones([square(d.lon + 0.004, d.lat, 0.002, id="steel", kind="enterprise_site",
                              heat_source=True)])
    (event,) = find_events([d], P, zones).events
    assert event.masked == "heat_source_zone:steel"  # within half a pixel of the site
    reach = max(d.scan, d.track) / 2 / 110.574  # half a pixel north, in degrees
    edge = FireZones([square(d.lon, d.lat + reach + 0.002 - 0.0005, 0.002, id="in",
                             kind="enterprise_site", heat_source=True)])
    assert find_events([d], P, edge).events[0].masked == "heat_source_zone:in"
    away = FireZones([square(d.lon, d.lat + reach + 0.002 + 0.0005, 0.002, id="out",
                             kind="enterprise_site", heat_source=True)])
    assert find_events([d], P, away).events[0].masked is None
    plain = FireZones([square(d.lon + 0.004, d.lat, 0.002, id="mill", kind="enterprise_site")])
    assert find_events([d], P, plain).events[0].masked is None


def test_farmland_in_harvest_months_is_straw_burning() -> None:
    d = real()[0]  # 2022-05-29
    zones = FireZones([square(d.lon, d.lat, 0.01, id="pf-1", kind="protected_farmland"),
                       square(d.lon, d.lat, 0.5, id="cn-1", kind="jurisdiction")])
    (event,) = find_events([d], P, zones).events
    assert (event.kind, event.zones) == ("straw_burning", ["cn-1", "pf-1"])
    march = d.model_copy(update={"time": d.time.replace(month=3)})
    assert find_events([march], P, zones).events[0].kind == "open_fire"
    assert find_events([d], P).events[0].kind == "open_fire"  # no zones


def test_confidence_grows_with_looks_and_frp() -> None:
    d = real()[0].model_copy(update={"confidence": 0.5, "frp": 5.0})
    one = find_events([d], P).events[0].confidence
    looks = find_events([d, d.model_copy(update={"time": d.time + timedelta(hours=3),
                                                 "satellite": "A"})], P).events[0].confidence
    hot = find_events([d.model_copy(update={"frp": 200.0})], P).events[0].confidence
    assert 0.5 < one < looks < 0.99 and one < hot <= 0.99


def test_mutated_files_are_refused_with_a_reason_never_a_crash() -> None:
    import random

    rng = random.Random(18)
    original = SHANDONG.read_bytes()[:4000]
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(500):
        data = bytearray(original)
        for _ in range(rng.randint(1, 40)):
            pos = rng.randrange(len(data))
            op = rng.random()
            if op < 0.4:
                data[pos] = rng.randrange(256)
            elif op < 0.7:
                del data[pos:pos + rng.randint(1, 30)]
            else:
                data[pos:pos] = rng.choice([b",", b"\n", b"nan", b"-1e999", b'"', b"\x00"])
        try:
            parsed = parse_firms(bytes(data))
        except FirmsError as exc:
            assert str(exc)
            outcomes["refused"] += 1
            continue
        outcomes["parsed"] += 1
        assert all(b.reason for b in parsed.bad_rows)
        find_events(parsed.detections, P)  # whatever parsed can be grouped
    assert outcomes["parsed"] and outcomes["refused"]
