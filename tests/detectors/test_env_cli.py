"""``offsite env analyze`` and the shared plug-in registry."""

import json
from pathlib import Path

from typer.testing import CliRunner

from detectors.env import StationMonitor
from detectors.env_config import EnvConfig
from detectors.plugin import create, parse_config, registered
from offsite.cmd_env import app

DONGSI = Path("samples/sensors/beijing_dongsi_2013-2017.csv")


def head(tmp_path: Path, lines: int) -> Path:
    out = tmp_path / "dongsi_head.csv"
    with DONGSI.open() as src:
        out.write_text("".join(line for _, line in zip(range(lines), src, strict=False)))
    return out


def test_analyze_beijing_writes_jsonl_without_png_bytes(tmp_path: Path) -> None:
    out = tmp_path / "clues.jsonl"
    res = CliRunner().invoke(app, ["analyze", str(head(tmp_path, 800)), "--station", "dongsi",
                                   "--adopted-from", "2013-01-01", "--out", str(out), "--full"])
    assert res.exit_code == 0, res.output
    clues = [json.loads(line) for line in out.read_text().splitlines()]
    assert any(c["rule"] == "GB3095-2012/II/a34004/24h" for c in clues)
    assert all(c["evidence"] == [] for c in clues)


def test_analyze_with_evidence_dir(tmp_path: Path) -> None:
    evdir = tmp_path / "ev"
    res = CliRunner().invoke(app, ["analyze", str(head(tmp_path, 200)), "--station", "dongsi",
                                   "--adopted-from", "2013-01-01", "--evidence-dir", str(evdir),
                                   "--full"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    items = [e for c in lines for e in c["evidence"]]
    assert items and all("content" not in e and e["sha256"] for e in items)
    pngs = list(evdir.glob("*.png"))
    assert pngs and pngs[0].read_bytes().startswith(b"\x89PNG")


def test_analyze_generic_format_with_flags(tmp_path: Path) -> None:
    rows = ["time,a21026,a19001,a21026-Flag"]
    rows += [f"2020-01-01T{h:02d}:00:00,{250 if 3 <= h < 6 else 100},6.0,N" for h in range(10)]
    src = tmp_path / "stack.csv"
    src.write_text("\n".join(rows) + "\n")
    res = CliRunner().invoke(app, ["analyze", str(src), "--station", "stack1", "--format",
                                   "generic", "--st", "31", "--full"])
    assert res.exit_code == 0, res.output
    clues = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    ex = [c for c in clues if c["kind"] == "exceedance"]
    assert len(ex) == 1 and ex[0]["metrics"]["exceeding_windows"] == 3
    assert ex[0]["rule"] == "GB13223-2011/coal-existing/a21026/1h"


def test_plugin_registry_builds_and_restores_env_detector() -> None:
    assert registered()["env"] is EnvConfig
    cfg = parse_config({"type": "env", "spike_z": 12})
    assert isinstance(cfg, EnvConfig) and cfg.spike_z == 12
    det = create(cfg, "st-1")
    assert isinstance(det, StationMonitor)
    again = create(cfg, "st-1", det.to_state())
    assert again.station.id == "st-1"
