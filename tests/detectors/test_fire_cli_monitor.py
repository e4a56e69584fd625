"""``offsite satellite fires`` and the fire plug-in's per-cell monitor, on real FIRMS rows.

MODIS Collection 6.1 NRT Hotspot / Active Fire Detections MCD14DL, NASA FIRMS,
doi:10.5067/FIRMS/MODIS/MCD14DL.NRT.0061 -- in ``samples/satellite/firms``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from contract.records import FireBatch
from detectors.fire import FireZones
from detectors.fire_firms import parse_firms
from detectors.fire_monitor import MAX_HISTORY, FireConfig, FireMonitor
from detectors.plugin import create
from offsite.cmd_satellite import app

ROOT = Path(__file__).resolve().parents[2]
SHANDONG = ROOT / "samples" / "satellite" / "firms" / \
    "modis_2022-05-28_06-04_shandong_box.csv"
KEYS = {"kind", "start", "end", "lon", "lat", "detections", "max_frp", "confidence", "zones",
        "masked"}


def square(lon: float, lat: float, half: float, **props: object) -> dict:
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half],
            [lon - half, lat + half], [lon - half, lat - half]]
    return {"type": "Feature", "properties": props,
            "geometry": {"type": "Polygon", "coordinates": [ring]}}


def head(tmp_path: Path, rows: int) -> Path:
    """The real file's first rows (a temporary file: evidence for every event takes time)."""
    part = tmp_path / "firms_head.csv"
    part.write_text("\n".join(SHANDONG.read_text().splitlines()[:rows + 1]) + "\n")
    return part


def test_cli_writes_one_line_per_event(tmp_path: Path) -> None:
    source = head(tmp_path, 40)
    dets = parse_firms(source.read_bytes()).detections
    a, b = dets[0], dets[30]
    zones = tmp_path / "zones.geojson"
    zones.write_text(json.dumps({"type": "FeatureCollection", "features": [
        square(a.lon, a.lat, 0.01, id="pf-a", kind="protected_farmland"),
        square(b.lon, b.lat, 0.003, id="plant-b", kind="enterprise_site", heat_source=True),
    ]}))
    out = tmp_path / "events.jsonl"
    res = CliRunner().invoke(app, ["fires", str(source), "--zones", str(zones),
                                   "--out", str(out), "--evidence-dir", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert events and all(KEYS <= set(e) for e in events)
    assert sum(e["detections"] for e in events) <= len(dets)
    farm = [e for e in events if "pf-a" in e["zones"]]
    assert farm and farm[0]["kind"] == "straw_burning"  # 2022-05-29: wheat harvest
    masked = [e for e in events if e["masked"]]
    assert [e["masked"] for e in masked] == ["heat_source_zone:plant-b"]
    assert all(datetime.fromisoformat(e["start"]).utcoffset().total_seconds() == 0
               for e in events)
    assert all(0 <= e["confidence"] <= 1 for e in events)
    pngs = list((tmp_path / "ev").glob("*_map.png"))
    assert len(pngs) == len(events) - 1 and pngs[0].read_bytes()[:4] == b"\x89PNG"
    assert "straw_burning 1" in res.output and "masked 1 (heat_source_zone 1)" in res.output

    plain = tmp_path / "plain.jsonl"
    res = CliRunner().invoke(app, ["fires", str(SHANDONG), "--out", str(plain)])
    assert res.exit_code == 0
    assert {json.loads(line)["kind"] for line in plain.read_text().splitlines()} == {
        "open_fire"}


def test_cli_refuses_a_file_that_is_not_firms(tmp_path: Path) -> None:
    bad = tmp_path / "stations.csv"
    bad.write_text("id,name,lon,lat\nS1,x,117,36\n")
    res = CliRunner().invoke(app, ["fires", str(bad), "--out", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 2 and "missing column" in res.output


def batch(dets: list, sha: str = "0" * 64) -> FireBatch:
    return FireBatch(source="test.csv", sha256=sha, cell="wwe", detections=dets)


def test_monitor_grows_events_across_deliveries_and_ignores_repeats() -> None:
    dets = sorted(parse_firms(SHANDONG.read_bytes()).detections, key=lambda d: d.time)
    first_day = [d for d in dets if d.time.date() == dets[0].time.date()]
    rest = [d for d in dets if d.time.date() != dets[0].time.date()]
    mon = create(FireConfig(), "wwe")
    assert isinstance(mon, FireMonitor)
    opened = mon.observe(batch(first_day))
    assert opened and all(c.modality == "satellite" and c.state == "open" for c in opened)
    assert {c.kind for c in opened} == {"open_fire"}  # no zones given
    clue = opened[0]
    assert {e.media_type for e in clue.evidence} == {"image/png", "text/csv",
                                                     "application/json"}
    assert clue.metrics["source_sha256"] == "0" * 64
    again = FireMonitor(FireConfig(), "wwe", mon.to_state())
    assert again.observe(batch(first_day)) == []  # delivered twice: nothing new
    # the same place burning again 3 h later continues the event: same clue, updated
    d = first_day[0]
    later = d.model_copy(update={"time": d.time.replace(hour=(d.time.hour + 3) % 24),
                                 "satellite": "A"})
    (grown,) = again.observe(batch([later]))
    assert grown.state == "update"
    assert grown.clue_id in {c.clue_id for c in opened}
    assert again.observe(batch(rest[:20]))
    assert len(again.to_state()["history"]) <= MAX_HISTORY


def test_monitor_masks_and_classifies_with_zones() -> None:
    d = parse_firms(SHANDONG.read_bytes()).detections[0]
    zones = FireZones([square(d.lon, d.lat, 0.01, id="pf", kind="protected_farmland")])
    (clue,) = FireMonitor(FireConfig(), "wwe", zones=zones).observe(batch([d]))
    assert clue.kind == "straw_burning" and clue.rule == "firms/straw_burning"
    assert clue.location == {"type": "Point", "coordinates": [d.lon, d.lat]}
    hot = FireZones([square(d.lon, d.lat, 0.01, id="w", kind="enterprise_site",
                            heat_source="true")])
    mon = FireMonitor(FireConfig(), "wwe", zones=hot)
    assert mon.observe(batch([d])) == [] and mon.masked == ["heat_source_zone:w"]


def test_monitor_closes_an_event_once_the_data_pass_its_grouping_window() -> None:
    """By the grouping rule (12 h) an event cannot grow once the data's clock is further
    past its last detection: its clue is sent again, closed, once."""
    d = parse_firms(SHANDONG.read_bytes()).detections[0]
    mon = FireMonitor(FireConfig(), "wwe")
    (opened,) = mon.observe(batch([d]))

    def data_at(hours: float) -> FireBatch:  # a batch with no fire in this cell
        return FireBatch(source="poll", sha256="1" * 64, cell="wwe",
                         observed_until=d.time + timedelta(hours=hours))

    assert mon.observe(data_at(11)) == []  # a detection now would still join the event
    restarted = FireMonitor(FireConfig(), "wwe", json.loads(json.dumps(mon.to_state())))
    (closed,) = restarted.observe(data_at(13))
    assert closed.state == "closed" and closed.clue_id == opened.clue_id
    assert closed.end == d.time and closed.time == opened.time
    assert closed.kind == opened.kind and closed.metrics == opened.metrics
    assert closed.evidence == []  # already fixed with the open clue
    assert restarted.observe(data_at(30)) == []  # closed once
    # the same place burning again later is a new event
    again = d.model_copy(update={"time": d.time + timedelta(hours=31)})
    (reopened,) = restarted.observe(batch([again]))
    assert reopened.state == "open" and reopened.clue_id != opened.clue_id


def test_an_archive_closes_its_early_events_in_the_same_delivery() -> None:
    """A week of FIRMS rows in one file: events that ended more than 12 h before the
    file's newest detection come out opened and then closed; the latest stay open."""
    dets = parse_firms(SHANDONG.read_bytes()).detections
    newest = max(d.time for d in dets)
    clues = FireMonitor(FireConfig(), "wwe").observe(batch(dets))
    opened = {c.clue_id: c for c in clues if c.state == "open"}
    closed = [c for c in clues if c.state == "closed"]
    assert closed and len(closed) < len(opened)
    for c in closed:
        assert c.clue_id in opened and clues.index(c) > clues.index(opened[c.clue_id])
        assert newest - c.end > timedelta(hours=12)
    still_open = set(opened) - {c.clue_id for c in closed}
    assert all(newest - opened[i].time <= timedelta(hours=12) for i in still_open)
