"""Fault tests: each test gets services and processes of its own, and breaks them.

Nothing here touches the session-wide ``services``/``flow`` fixtures: a rig starts its own
EmbeddedServices in ``.state/faults-<pid>-<name>`` plus its own worker and MQTT ingester
subprocesses, and stops all of them in a ``finally``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from offsite.services import EmbeddedServices, remove_state

ROOT = Path(__file__).resolve().parent.parent.parent
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


class Rig:
    """Own services + own ``offsite worker`` / ``offsite ingest mqtt`` processes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = ROOT / ".state" / f"faults-{os.getpid()}-{name}"
        remove_state(self.state)
        self.services = EmbeddedServices(self.state)
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs = self.state / "logs"
        self.env: dict[str, str] = {}
        self.station = f"FAULT-{name.upper()}"
        self._client: mqtt.Client | None = None

    # --- life cycle -------------------------------------------------------------------------
    def start(self) -> Rig:
        from storage.migrate import migrate

        self.services.start()
        migrate(self.services.database_url)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, **self.services.env(), "OFFSITE_PARTITIONS": "2",
                    "OFFSITE_SINK_BATCH_SECONDS": "0.2",
                    "OFFSITE_MQTT_CLIENT_ID": f"offsite-fault-{self.name}",
                    # Faust's own settings (read from the environment): a crashed worker's
                    # partitions move after 10 s instead of 60 s, and a (re)join waits 5 s
                    "BROKER_SESSION_TIMEOUT": "10", "BROKER_HEARTBEAT_INTERVAL": "1",
                    "BROKER_REBALANCE_TIMEOUT": "5"}
        self.start_proc("worker")
        self.start_proc("ingest")
        return self

    def start_proc(self, which: str) -> None:
        args = {"worker": ["worker"], "ingest": ["ingest", "mqtt"]}[which]
        fh = open(self.logs / f"{which}.log", "ab")  # noqa: SIM115 - the child's for its life
        self.procs[which] = subprocess.Popen([sys.executable, "-m", "offsite", *args],
                                             env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, cwd=ROOT)

    def stop_proc(self, which: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        proc = self.procs.pop(which, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def alive(self, which: str) -> bool:
        proc = self.procs.get(which)
        return proc is not None and proc.poll() is None

    def close(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()
        for which in list(self.procs):
            self.stop_proc(which, timeout=20)
        self.services.stop()

    # --- input ------------------------------------------------------------------------------
    @property
    def mqtt_port(self) -> int:
        return int(self.services.mqtt_url.rsplit(":", 1)[1])

    def client(self) -> mqtt.Client:
        """One publishing client (QoS 1, its own session); reconnects by itself."""
        if self._client is None:
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fault-sender-{self.name}",
                            clean_session=True, protocol=mqtt.MQTTv311)
            c.reconnect_delay_set(min_delay=1, max_delay=2)
            url = urlparse(self.services.mqtt_url)
            c.username_pw_set(url.username, url.password)  # no anonymous clients
            c.connect("127.0.0.1", self.mqtt_port, keepalive=30)
            c.loop_start()
            self._client = c
        return self._client

    def reading(self, i: int) -> bytes:
        """Reading ``i``: its own time (unique natural key), value ``i``."""
        t = (BASE_TIME + timedelta(seconds=i)).isoformat()
        return json.dumps({"time": t, "values": {"a34004": float(i)}}).encode()

    def publish(self, start: int, count: int, station: str | None = None,
                pace: float = 0.0) -> None:
        """Publish readings ``start .. start+count-1`` with QoS 1; wait until the broker has
        each (PUBACK), so every one of them was acknowledged to the sender."""
        station = station or self.station
        client = self.client()
        deadline = time.monotonic() + 30
        while not client.is_connected():  # e.g. right after a mosquitto restart
            assert time.monotonic() < deadline, "the sender did not reconnect in 30 s"
            time.sleep(0.1)
        infos = []
        for i in range(start, start + count):
            infos.append(client.publish(f"offsite/env/{station}/json",
                                               self.reading(i), qos=1))
            if pace:
                time.sleep(pace)
        deadline = time.monotonic() + 60
        for info in infos:
            while not info.is_published():
                assert time.monotonic() < deadline, "mosquitto did not PUBACK in 60 s"
                time.sleep(0.05)

    # --- output -----------------------------------------------------------------------------
    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.services.database_url, connect_timeout=3) as conn:
            return conn.execute(sql, params).fetchall()

    def count(self, station: str | None = None) -> int:
        return self.query("SELECT count(*) FROM readings WHERE station = %s",
                          (station or self.station,))[0][0]

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except psycopg.OperationalError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{self.name}: timed out after {timeout:.0f}s waiting for {what}\n"
                             + self.log_tails())

    def log_tails(self, n: int = 2500) -> str:
        noise = ("Unable connect", "Unable to update metadata", "NodeNotReady", "Failed fetch",
                 "Coordinator Request failed", "Heartbeat")

        def tail(path: Path) -> str:
            lines = path.read_text(errors="replace").splitlines()
            return "\n".join(ln for ln in lines if not any(x in ln for x in noise))[-n:]

        return "\n".join(f"--- {p.name}\n" + tail(p)
                         for p in sorted([*self.logs.glob("*.log"), *self.state.glob("*.log")]))

    def warm_up(self, timeout: float = 120) -> None:
        """Wait until a probe has made the whole trip (ingester subscribed, worker assigned)."""
        n = [0]

        def probe() -> bool:
            n[0] += 1
            self.publish(900_000 + n[0], 1, station=f"{self.station}-WARM")
            time.sleep(1)
            return self.count(f"{self.station}-WARM") > 0

        self.wait_for("the warm-up reading", probe, timeout)

    def assert_exactly(self, expected: range) -> None:
        """Every reading of ``expected`` is in the table exactly once, and nothing else."""
        rows = self.query(
            "SELECT count(*), count(DISTINCT (station, code, period, time)), sum(value)"
            " FROM readings WHERE station = %s", (self.station,))
        total, distinct, value_sum = rows[0]
        assert (total, distinct) == (len(expected), len(expected)), (total, distinct)
        assert value_sum == float(sum(expected))
        got = {round(r[0]) for r in self.query(
            "SELECT value FROM readings WHERE station = %s", (self.station,))}
        assert got == set(expected)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.fault_call_passed = report.passed  # type: ignore[attr-defined]


@pytest.fixture()
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    name = request.node.name.removeprefix("test_").split("[")[0].replace("_", "-")[:40]
    r = Rig(name)
    try:
        r.start()
        r.warm_up()
        yield r
    finally:
        r.close()
        passed = getattr(request.node, "fault_call_passed", False)
        if passed and not os.environ.get("OFFSITE_FAULTS_KEEP"):  # else keep logs + data
            remove_state(r.state)
