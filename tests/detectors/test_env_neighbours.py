"""Neighbour rules offline: ``env analyze --stations`` on the 12 real Beijing stations.

Real PM2.5/PM10 of winter 2013-14 (``samples/sensors/beijing_12``), with a blocked
sampler and a local source planted where the neighbours' own data make them meaningful:
the contract's kinds, values and neighbours, one clue per station/code/episode, lines in
any order across stations, ``--station`` filtering the output only, and spikes deferring to
the neighbours (kept, and saying why, at a station with none).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from statistics import median
from typing import Any

import pytest
from typer.testing import CliRunner

from bench.bench_env_neighbours import load
from contract.records import Reading
from detectors.env_io import contract_lines
from detectors.env_neighbours import PM10, PM25, NeighbourMap
from detectors.env_region import read_sites
from offsite.cmd_env import app

# the winter 2013-14 PM of the 12 stations and Dingling's whole record (samples/README.md)
DATA = Path(__file__).resolve().parents[2] / "samples" / "sensors" / "beijing_12"

CST = timezone(timedelta(hours=8))
START, STOP = datetime(2013, 11, 20, tzinfo=CST), datetime(2014, 1, 20, tzinfo=CST)


@pytest.fixture(scope="module")
def winter() -> dict[str, list[Reading]]:
    per = load(until=STOP.replace(tzinfo=None), data=DATA)
    return {sid: [r for r in rs if r.time >= START] for sid, rs in per.items()}


def neighbour_median(per: dict[str, list[Reading]], nmap: NeighbourMap, sid: str,
                     code: str) -> dict[datetime, float]:
    by_time: dict[datetime, list[float]] = {}
    for n in nmap.of(sid):
        for r in per[n]:
            if code in r.values:
                by_time.setdefault(r.time, []).append(r.values[code])
    return {t: median(v) for t, v in by_time.items() if len(v) >= 3}


def find_run(med: dict[datetime, float], own: dict[datetime, Reading], hours: int,
             ok: Any) -> datetime:
    """The first start of ``hours`` hours where ``ok(neighbours' median)`` holds throughout
    and the station itself reported, after a week (the station's relation to its
    neighbours is learnt from its first 48 judged hours)."""
    for t in sorted(t for t in med if t >= START + timedelta(days=7)):
        span = [t + timedelta(hours=k) for k in range(hours)]
        if all(s in med and s in own and ok(med[s]) for s in span):
            return t
    raise AssertionError("no such run in the data")


def doctor(per: dict[str, list[Reading]], sid: str, start: datetime, hours: int,
           change: Any) -> dict[str, list[Reading]]:
    stop = start + timedelta(hours=hours)
    out = dict(per)
    out[sid] = [r.model_copy(update={"values": {c: change(c, v) if c in (PM25, PM10) else v
                                                for c, v in r.values.items()}})
                if start <= r.time < stop else r for r in per[sid]]
    return out


def write_lines(per: dict[str, list[Reading]], path: Path) -> Path:
    """Stations interleaved hour by hour, in reverse id order: any order across stations,
    each station's own lines in time order."""
    rows = sorted((r.time, -i, line) for i, sid in enumerate(sorted(per))
                  for r in per[sid] for line in contract_lines([r]))
    path.write_text("".join(line + "\n" for _, _, line in rows))
    return path


def analyze(tmp_path: Path, readings: Path, stations: Path, *extra: str) -> list[dict]:
    out = tmp_path / "clues.jsonl"
    res = CliRunner().invoke(app, ["analyze", str(readings), "--stations", str(stations),
                                   "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.fixture(scope="module")
def planted(winter: dict[str, list[Reading]], tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Path, dict[str, Any]]:
    nmap = NeighbourMap(read_sites(DATA / "stations.csv"))
    own = {r.time: r for r in winter["BJ-DONGSI"]}
    med = neighbour_median(winter, nmap, "BJ-DONGSI", PM25)
    blocked = find_run(med, own, 24, lambda m: m >= 150)
    per = doctor(winter, "BJ-DONGSI", blocked, 24, lambda c, v: round(v * 0.2, 1))
    own = {r.time: r for r in winter["BJ-TIANTAN"]}
    med = neighbour_median(winter, nmap, "BJ-TIANTAN", PM25)
    source = find_run(med, own, 8, lambda m: m <= 30)
    per = doctor(per, "BJ-TIANTAN", source, 8,
                 lambda c, v: v + (150.0 if c == PM25 else 300.0))
    path = write_lines(per, tmp_path_factory.mktemp("nb") / "readings.jsonl")
    return path, {"blocked": blocked, "source": source}


def overlaps(clue: dict, start: datetime, hours: int) -> bool:
    s, e = datetime.fromisoformat(clue["start"]), datetime.fromisoformat(clue["end"])
    return s < start + timedelta(hours=hours) and start < e


def test_blocked_sampler_and_local_source_are_found_with_the_contract(
        planted: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, at = planted
    clues = analyze(tmp_path, path, DATA / "stations.csv")
    interference = [c for c in clues if c["kind"] == "interference"
                    and c["station"] == "BJ-DONGSI" and overlaps(c, at["blocked"], 24)]
    assert {c["code"] for c in interference} == {PM25, PM10}
    assert len(interference) == 2  # one clue per station, code and episode
    for c in interference:
        assert c["standard"] is None
        assert c["value"] < 0.5 * c["limit"]  # station mean far under the neighbours' median
        assert c["limit"] >= 100
        near = {n["station"] for n in c["detail"]["neighbours"]}
        assert "BJ-NONGZHANGUAN" in near and "BJ-DONGSI" not in near and len(near) >= 3
    local = [c for c in clues if c["kind"] == "local_source" and c["station"] == "BJ-TIANTAN"
             and overlaps(c, at["source"], 8)]
    assert {c["code"] for c in local} == {PM25, PM10}
    for c in local:
        assert c["value"] > c["limit"] + 100
    # the neighbour rules replace the lone spike rule for PM at stations with neighbours
    assert not [c for c in clues if c["kind"] == "spike" and c["code"] in (PM25, PM10)]


def test_station_filters_the_output_only_and_neighbours_still_count(
        planted: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, at = planted
    clues = analyze(tmp_path, path, DATA / "stations.csv", "--station", "BJ-DONGSI")
    assert clues and {c["station"] for c in clues} == {"BJ-DONGSI"}
    assert any(c["kind"] == "interference" and overlaps(c, at["blocked"], 24) for c in clues)


def test_a_station_without_neighbours_keeps_its_spike_rule_and_says_so(
        winter: dict[str, list[Reading]], tmp_path: Path) -> None:
    """Dongsi's record sent as if from Shanghai, with the Beijing stations: no neighbour
    within the radius, so its PM spikes are judged alone as before."""
    stations = tmp_path / "stations.csv"
    shutil.copy(DATA / "stations.csv", stations)
    with stations.open("a") as fh:
        fh.write("SH-FAR,Far away,121.47,31.23,22\n")
    per = dict(winter)
    per["SH-FAR"] = [r.model_copy(update={"station": "SH-FAR"}) for r in winter["BJ-DONGSI"]]
    alone = analyze(tmp_path, write_lines(per, tmp_path / "r.jsonl"), stations,
                    "--station", "SH-FAR")
    spikes = [c for c in alone if c["kind"] == "spike" and c["code"] in (PM25, PM10)]
    assert spikes
    assert all("judged alone: 0 ambient neighbours" in c["detail"]["metrics"]
               ["neighbour_rules"] for c in spikes)
    assert not [c for c in alone if c["kind"] in ("interference", "local_source")]


def test_replay_needs_a_block_with_enough_information() -> None:
    """Dingling's real PM2.5 and PM10 alone: two channels repeat three hours of values by
    chance at an honest station (the old rule, no information needed, calls that a replay);
    a resent block of all six real channels is still a replay."""
    from detectors.env import analyze_series, final_clues
    from detectors.env_config import EnvConfig, StationInfo
    from detectors.env_io import read_beijing

    full = list(read_beijing(DATA / "PRSA_Data_Dingling_20130301-20150228.csv", "BJ-DINGLING"))
    two = [r.model_copy(update={"values": {c: v for c, v in r.values.items()
                                           if c in (PM25, PM10)}}) for r in full]
    two = [r for r in two if r.values]
    info = StationInfo(id="BJ-DINGLING")

    def replays(readings: list[Reading], **cfg: Any) -> list:
        clues = final_clues(analyze_series(readings, info, EnvConfig(evidence=False, **cfg)))
        return [c for c in clues if c.kind == "replay"]

    assert replays(two, replay_min_info=0)  # chance repeats exist in the real record
    assert not replays(two)
    part = [r for r in full[:3000] if len(r.values) == 6]
    doctored = [r.model_copy(deep=True) for r in part]
    for i in range(6):  # six hours resent a week later with new timestamps
        doctored[2000 + i].values = dict(doctored[1832 + i].values)
    found = replays(doctored)
    assert len(found) == 1 and found[0].metrics["information"] >= 12
    assert not replays(part)


def test_stations_file_as_excel_writes_it(tmp_path: Path) -> None:
    """The registry's stations.csv from Excel: GB18030 or UTF-8 with BOM, Chinese names;
    rows without coordinates cannot have neighbours and are left out."""
    text = ("id,name,lon,lat,st\nBJ-DONGSI,东四,116.417,39.929,22\n"
            "BJ-TIANTAN,天坛,116.407,39.886,\nWW-1,污水厂,,,32\n")
    for enc in ("gb18030", "utf-8-sig"):
        path = tmp_path / f"stations-{enc}.csv"
        path.write_bytes(text.encode(enc))
        sites = read_sites(path)
        assert [(s.id, s.st) for s in sites] == [("BJ-DONGSI", "22"), ("BJ-TIANTAN", "22")]
        assert NeighbourMap(sites).of("BJ-DONGSI") == ["BJ-TIANTAN"]
