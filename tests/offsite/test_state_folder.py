"""One state folder (issue 20 case 8): with ``OFFSITE_STATE_DIR`` set to the folder given to
``offsite up``, the operator's commands find the key, the heads and the media that the
processes started by ``offsite up`` wrote there.

The supervisor is the real one (``offsite.runner.Supervisor``) on a real PostgreSQL; the
child that fixes evidence is a real process started with the supervisor's environment, as
the worker is. Kafka and MQTT are given as URLs so that no broker is started: nothing here
talks to them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from contract.settings import Settings
from offsite.runner import Supervisor
from storage.evidence_chain import KEY_FILE, EvidenceSigner

ROOT = Path(__file__).resolve().parents[2]
OFFSITE = ROOT / ".venv" / "bin" / "offsite"
CHILD = """
import asyncio
from datetime import UTC, datetime
from contract.clue import Clue, EvidenceRef
from contract.settings import get_settings
from storage.db import open_pool
from storage.evidence_store import EvidenceStore

async def main():
    clue = Clue(modality="video", kind="occlusion", rule="tamper/occlusion", subject="CAM-S",
                start=datetime(2016, 1, 1, tzinfo=UTC), time=datetime(2016, 1, 1, tzinfo=UTC),
                summary="covered", evidence=[EvidenceRef(media_type="image/jpeg",
                name="frame.jpg", content=b"\\xff\\xd8 frame of the state folder test")])
    pool = await open_pool(get_settings().database_url, min_size=1, max_size=1)
    store = await EvidenceStore.open(pool)
    print(await store.add(clue), clue.clue_id)
    await pool.close()

asyncio.run(main())
"""


def supervisor(db: str | None, state: Path) -> Supervisor:
    """The supervisor of `offsite up`; with ``db`` None it starts the embedded PostgreSQL
    in ``<state>/services``, as `offsite up` does."""
    settings = Settings(database_url=db, state_dir=state, broker_url="kafka://127.0.0.1:9",
                        mqtt_url="mqtt://127.0.0.1:9")
    sup = Supervisor(settings)
    sup.start_services()
    return sup


def operator(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """An operator's shell: OFFSITE_STATE_DIR as given to `offsite up` (relative, here)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFSITE_")}
    env.update(OFFSITE_STATE_DIR="state", OFFSITE_DATABASE_URL=os.environ["T_DB"],
               OFFSITE_EVIDENCE_MEDIA="folder")
    return subprocess.run([str(OFFSITE), *args], env=env, cwd=tmp, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture()
def up(tmp_path: Path) -> Iterator[Supervisor]:
    sup = supervisor(None, tmp_path / "state")
    yield sup
    sup.stop()


def test_commands_find_what_offsite_up_wrote(up: Supervisor, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    assert up.services is not None and up.services.state_dir == (state / "services").resolve()
    assert up.env["OFFSITE_STATE_DIR"] == str(state.resolve())
    fresh_db = up.env["OFFSITE_DATABASE_URL"]
    env = {**up.env, "OFFSITE_EVIDENCE_MEDIA": "folder"}
    child = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stdout + child.stderr
    clue_id = child.stdout.split()[-1]
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start,"
                     " time, summary, confidence) VALUES (%s, 'video', 'occlusion',"
                     " 'tamper/occlusion', 'CAM-S', 'open', '2016-01-01Z', '2016-01-01Z',"
                     " 'covered', 1)", (clue_id,))
    # the key, the heads and the media are in the folder given to `offsite up`
    assert (state / KEY_FILE).exists() and (state / "evidence_heads.json").exists()
    assert any((state / "evidence").rglob("*")) and not (state / "services" / KEY_FILE).exists()

    monkeypatch.setenv("T_DB", fresh_db)
    out = operator(tmp_path, "evidence", "verify")
    assert out.returncode == 0 and "OK: 1 record(s)" in out.stdout, out.stdout + out.stderr
    key = operator(tmp_path, "evidence", "public-key", "--hex")
    assert key.returncode == 0, key.stderr
    assert key.stdout.strip() == EvidenceSigner.load_or_create(state).public_hex()
    bundle = tmp_path / "case.zip"
    out = operator(tmp_path, "case", "export", clue_id, "--out", str(bundle))
    assert out.returncode == 0, out.stdout + out.stderr
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        media = [n for n in zf.namelist() if n.startswith("media/")]
    assert manifest["items"][0]["file"] in media and len(media) == 1
    out = operator(tmp_path, "case", "verify", str(bundle))
    assert out.returncode == 0, out.stdout


def test_key_left_by_older_offsite_up_is_adopted(fresh_db: str, tmp_path: Path) -> None:
    """Older versions kept the key under services/: the next `offsite up` moves it up, so
    evidence it signed stays verifiable with the same key."""
    state = tmp_path / "state"
    old = EvidenceSigner.load_or_create(state / "services")
    supervisor(fresh_db, state)
    assert not (state / "services" / KEY_FILE).exists()
    assert EvidenceSigner.load_or_create(state).public_hex() == old.public_hex()
