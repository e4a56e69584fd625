"""HJ 212 over TCP, whole flow: `offsite ingest hj212` runs as a real child process next to
the e2e worker; `offsite replay sensors --as hj212` sends real Beijing rows to it (each frame
waits for its 9014) or over MQTT; readings and rejected frames land in PostgreSQL."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from contract.records import Reading
from ingest.hj212 import build, parse_frame
from ingest.replay import beijing_rows
from offsite.services import free_port

Flow = Any  # the `flow` fixture of tests/e2e/conftest.py
CSV = Path(__file__).resolve().parents[2] / "samples" / "sensors" / "beijing_dongsi_2013-2017.csv"
STATIONS = (("E2E-TCP-1", "pw-tcp-1"), ("E2E-TCP-2", "pw-tcp-2"), ("E2E-TCP-MQ", None))


@pytest.fixture(scope="module")
def hj212_port(flow: Flow) -> Iterator[int]:
    with psycopg.connect(flow.database_url) as conn:
        for mn, pw in STATIONS:
            conn.execute("INSERT INTO stations (id, password, st, interval_s) VALUES"
                         " (%s, %s, '22', 3600) ON CONFLICT (id) DO UPDATE"
                         " SET password = EXCLUDED.password", (mn, pw))
    port = free_port()
    log = open(flow.logs / "ingest-hj212.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "offsite", "ingest", "hj212", "--port",
                             str(port)], env=flow.env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((flow.logs / "ingest-hj212.log").read_text()) from None
                time.sleep(0.2)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _replay(flow: Flow, station: str, limit: int, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "offsite", "replay", "sensors", str(CSV),
                           "--station", station, "--as", "hj212", "--limit", str(limit), *args],
                          env=flow.env, capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return proc.stdout.decode()


def _expected(limit: int) -> list[tuple[datetime, str, float]]:
    return sorted((datetime.fromisoformat(doc["time"]).astimezone(UTC), code, value)
                  for doc in beijing_rows(CSV, limit) for code, value in doc["values"].items())


def test_replay_over_tcp_reaches_database(flow: Flow, hj212_port: int) -> None:
    started = time.perf_counter()
    out = _replay(flow, "E2E-TCP-1", 48, "--target", f"tcp://127.0.0.1:{hj212_port}",
                  "--pw", "pw-tcp-1")
    replay_s = time.perf_counter() - started
    assert "sent 48 readings" in out
    expected = _expected(48)
    rows = flow.wait_for("SELECT time, code, value FROM readings WHERE station = 'E2E-TCP-1'"
                         " ORDER BY time, code", lambda r: len(r) >= len(expected))
    assert sorted((t.astimezone(UTC), c, v) for t, c, v in rows) == expected
    sources = flow.wait_for("SELECT DISTINCT source, period FROM readings"
                            " WHERE station = 'E2E-TCP-1'", bool)
    assert sources == [("hj212-tcp", "hour")]
    print(f"replayed 48 acknowledged frames over TCP in {replay_s:.2f} s (incl. start-up)")


def test_wrong_pw_gets_9011_and_a_rejected_row(flow: Flow, hj212_port: int) -> None:
    reading = Reading(station="E2E-TCP-2", period="hour", values={"a34004": 1.0},
                      time=datetime(2026, 3, 2, 1, tzinfo=UTC))
    wrong = build.data_frame(reading, st="22", pw="not-it", qn="20260302090000123",
                             ack=True).encode()
    right = build.data_frame(reading, st="22", pw="pw-tcp-2", qn="20260302090000124",
                             ack=True).encode()
    with socket.create_connection(("127.0.0.1", hj212_port), timeout=30) as sock:
        file = sock.makefile("rb")
        sock.sendall(b"garbage\r\n" + wrong[:10])
        sock.sendall(wrong[10:] + right)
        answers = [parse_frame(file.readline()), parse_frame(file.readline())]
    assert [(a.cn, a.qn, a.extra.get("QnRtn")) for a in answers] == [
        ("9011", "20260302090000123", "3"), ("9014", "20260302090000124", None)]
    dead = flow.wait_for("SELECT raw, reason, source FROM rejected"
                         " WHERE source = 'hj212-tcp' AND context->>'mn' = 'E2E-TCP-2'",
                         lambda r: len(r) == 1)
    assert bytes(dead[0][0]) == wrong and "wrong PW" in dead[0][1]
    flow.wait_for("SELECT value FROM readings WHERE station = 'E2E-TCP-2'",
                  lambda r: r == [(1.0,)])


def test_replay_as_hj212_over_mqtt(flow: Flow) -> None:
    out = _replay(flow, "E2E-TCP-MQ", 6, "--target", "mqtt")
    assert "published 6 readings" in out
    expected = _expected(6)
    rows = flow.wait_for("SELECT time, code, value, source FROM readings"
                         " WHERE station = 'E2E-TCP-MQ'", lambda r: len(r) >= len(expected))
    assert sorted((t.astimezone(UTC), c, v) for t, c, v, _ in rows) == expected
    assert {r[3] for r in rows} == {"mqtt-hj212"}
