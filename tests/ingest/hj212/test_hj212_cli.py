"""`offsite hj212 parse` through a real subprocess: the JSON-lines contract on every sample
frame (file and stdin), CRLF/LF input, blank and garbage lines, invalid UTF-8, --utc-offset."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
OFFSITE = ROOT / ".venv" / "bin" / "offsite"
ROWS = [json.loads(line) for line in
        (ROOT / "samples" / "hj212" / "packets.jsonl").read_text("utf-8").splitlines() if line]
KEYS = ["ok", "error", "crc_valid", "crc_variant", "length_valid", "version", "QN", "ST", "CN",
        "PW", "MN", "Flag", "PNUM", "PNO", "data_time", "values", "extra"]
VARIANTS = {"crc_hj212/seg": "hj212", "crc_modbus/seg": "modbus",
            "crc_modbus/seg/swapped": "modbus-swapped"}
NUMERIC = {"Rtd", "Avg", "Min", "Max", "Cou", "ZsRtd", "ZsAvg", "ZsMin", "ZsMax", "ZsCou"}


def run(args: list[str], data: bytes | None = None) -> list[dict[str, Any]]:
    proc = subprocess.run([str(OFFSITE), "hj212", "parse", *args], input=data, capture_output=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode("utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _input() -> bytes:
    """Each sample packet exactly as given (CRLF, or none, which the line break supplies)."""
    return b"".join(r["packet"].encode() + (b"" if r["packet"].endswith("\n") else b"\n")
                    for r in ROWS)


def check(row: dict[str, Any], out: dict[str, Any]) -> None:
    assert list(out) == KEYS
    ver = row["verified"]
    assert out["length_valid"] is ver["len_ok"]
    assert out["crc_valid"] is ver["crc_ok_hj212"]
    matches = [VARIANTS[v] for v in ver["crc_matches_variants"]]
    assert out["crc_variant"] == (matches[0] if matches else None)
    malformed = ";,MN=" in row["packet"]
    assert out["ok"] is (ver["len_ok"] and ver["crc_ok_hj212"] and not malformed)
    assert (out["error"] is None) is out["ok"]
    for key, want in row.get("expected", {}).items():
        if key in ("QN", "ST", "CN", "PW", "MN", "Flag"):
            assert out[key] == want
        elif key == "CP":
            for cp_key, raw in want.items():
                code, _, field = cp_key.rpartition("-")
                if cp_key == "DataTime":
                    assert out["data_time"].replace("-", "").replace("T", "").replace(
                        ":", "").startswith(raw)
                elif code and field in NUMERIC:
                    assert out["values"][code][field] == float(raw)
                elif code and field == "Flag":
                    assert out["values"][code][field] == raw
                else:
                    assert out["extra"][cp_key] == raw
        elif key == "CP_order":
            assert list(out["values"]) == want[1:] and out["data_time"]
    if "Flag" not in row["packet"]:
        assert out["version"] == "2005" and out["Flag"] is None


def test_samples_from_file(tmp_path: Path) -> None:
    path = tmp_path / "frames.txt"
    path.write_bytes(_input())
    outs = run([str(path)])
    assert len(outs) == len(ROWS)
    for row, out in zip(ROWS, outs, strict=True):
        check(row, out)
    assert outs[0]["data_time"] is None and outs[0]["extra"] == {"RtdInterval": "30"}
    assert outs[1]["data_time"] == "2016-08-24T00:38:17+08:00"


def test_samples_from_stdin_with_blank_and_garbage_lines() -> None:
    data = b"\n\r\n   \n" + _input() + b"garbage\r\n##0004\n\xff\xfe##\n"
    outs = run([], data)
    assert len(outs) == len(ROWS) + 3
    for row, out in zip(ROWS, outs, strict=False):
        check(row, out)
    for out in outs[len(ROWS):]:
        assert list(out) == KEYS and out["ok"] is False and out["error"]
        assert out["values"] == {} and out["MN"] is None


def test_lf_and_crlf_give_the_same_fields() -> None:
    packet = ROWS[0]["packet"]
    crlf, lf = run([], packet.encode()), run([], packet.replace("\r\n", "\n").encode())
    assert crlf == lf and crlf[0]["ok"]


def test_utc_offset_option() -> None:
    out = run(["--utc-offset", "+00:00"], ROWS[1]["packet"].encode())
    assert out[0]["data_time"] == "2016-08-24T00:38:17+00:00"
