"""A fire clue's case bundle: its map, detection table and source JSON are fixed, signed and
exported like any clue's evidence, and the bundle verifies (real PostgreSQL).

MODIS Collection 6.1 NRT Hotspot / Active Fire Detections MCD14DL, NASA FIRMS,
doi:10.5067/FIRMS/MODIS/MCD14DL.NRT.0061 (in ``samples/satellite/firms``).
"""

from __future__ import annotations

import asyncio
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contract.settings import Settings, get_settings
from detectors.fire import FireParams, find_events
from detectors.fire_evidence import event_clue, event_evidence
from detectors.fire_firms import parse_firms
from offsite.cmd_case import app
from storage.db import open_pool
from storage.evidence_store import EvidenceStore
from tests.offsite.test_case_export import insert_clue

FIRMS = Path(__file__).resolve().parents[2] / "samples" / "satellite" / \
    "firms" / "modis_2022-05-28_06-04_shandong_box.csv"


def test_fire_clue_bundle_verifies(fresh_db: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = parse_firms(FIRMS.read_bytes())
    event = max(find_events(parsed.detections, FireParams()).events,
                key=lambda e: (len(e.detections), e.max_frp))
    clue = event_clue(event, source=FIRMS.name, sha256=parsed.sha256,
                      evidence=event_evidence(event, None, FIRMS.name, parsed.sha256))
    state = tmp_path / "state"
    settings = Settings(database_url=fresh_db, state_dir=state, evidence_media="folder")

    async def fix() -> None:
        pool = await open_pool(fresh_db, min_size=1, max_size=2)
        try:
            await (await EvidenceStore.open(pool, settings)).add(clue)
        finally:
            await pool.close()

    asyncio.run(fix())
    insert_clue(fresh_db, clue)
    monkeypatch.setenv("OFFSITE_DATABASE_URL", fresh_db)
    monkeypatch.setenv("OFFSITE_STATE_DIR", str(state))
    monkeypatch.setenv("OFFSITE_EVIDENCE_MEDIA", "folder")
    get_settings.cache_clear()
    try:
        bundle = tmp_path / "fire.zip"
        res = CliRunner().invoke(app, ["export", clue.clue_id, "--out", str(bundle)])
        assert res.exit_code == 0, res.output
        checked = CliRunner().invoke(app, ["verify", str(bundle)])
        assert checked.exit_code == 0, checked.output
    finally:
        get_settings.cache_clear()
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        source = next(json.loads(zf.read(i["file"])) for i in manifest["items"]
                      if i["record"]["media_type"] == "application/json")
        table = next(zf.read(i["file"]).decode() for i in manifest["items"]
                     if i["record"]["media_type"] == "text/csv")
    assert manifest["clue"]["kind"] == "open_fire"
    assert {i["record"]["media_type"] for i in manifest["items"]} == {
        "image/png", "text/csv", "application/json"}
    assert source == {"source": FIRMS.name, "sha256": parsed.sha256}
    assert len(table.splitlines()) == len(event.detections) + 1
