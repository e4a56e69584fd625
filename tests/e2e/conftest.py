"""The whole flow on real services: worker and ingesters run as real child processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from offsite.services import EmbeddedServices


@dataclass
class Flow:
    env: dict[str, str]
    database_url: str
    mqtt_port: int
    logs: Path
    mqtt_user: str = ""
    mqtt_password: str = ""
    worker_metrics_port: int = 0

    def publish(self, topic: str, payload: bytes) -> None:
        """Send with the real mosquitto_pub client, QoS 1."""
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.mqtt_port), "-q", "1",
                        "-u", self.mqtt_user, "-P", self.mqtt_password,
                        "-t", topic, "-s"], input=payload, check=True, timeout=30)

    def wait_for(self, query: str, predicate: Callable[[object], bool], timeout: float = 120,
                 params: tuple = ()) -> object:
        """Poll the database until ``predicate(rows)`` holds; fail with the last rows seen."""
        deadline = time.monotonic() + timeout
        rows: object = None
        while time.monotonic() < deadline:
            with psycopg.connect(self.database_url) as conn:
                rows = conn.execute(query, params).fetchall()
            if predicate(rows):
                return rows
            time.sleep(0.5)
        logs = "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.logs.glob("*.log")))
        raise AssertionError(f"timed out waiting for {query!r}; last rows {rows!r}\n{logs}")


def _warm_up(flow: Flow, timeout: float = 180) -> None:
    """Wait until the ingester is subscribed and the worker owns its partitions.

    MQTT drops messages sent before a subscriber's first subscription exists, and a Faust
    worker joining its group takes a while; both are normal, so the tests start only once a
    probe reading has made the whole trip.
    """
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        doc = f'{{"time": "2000-01-01T00:00:{n % 60:02d}+08:00", "values": {{"a34004": {n}}}}}'
        flow.publish("offsite/env/E2E-WARMUP/json", doc.encode())
        with psycopg.connect(flow.database_url) as conn:
            if conn.execute("SELECT 1 FROM readings WHERE station = 'E2E-WARMUP'").fetchone():
                return
        time.sleep(2)
    flow.wait_for("SELECT 1 FROM readings WHERE station = 'E2E-WARMUP'", bool, timeout=1)


@pytest.fixture(scope="session")
def flow(services: EmbeddedServices, migrated_db: str) -> Iterator[Flow]:
    with socket.socket() as sock:  # the worker's Prometheus /metrics
        sock.bind(("127.0.0.1", 0))
        metrics_port = sock.getsockname()[1]
    env = {**os.environ, **services.env(), "OFFSITE_PARTITIONS": "2",
           "OFFSITE_SINK_BATCH_SECONDS": "0.2", "OFFSITE_MQTT_CLIENT_ID": "offsite-e2e",
           "OFFSITE_WORKER_METRICS_PORT": str(metrics_port)}
    logs = services.state_dir / "e2e-logs"
    logs.mkdir(exist_ok=True)
    # the province's zones, departments and routing rules, as a deployment registers them
    registry = Path(__file__).resolve().parents[2] / "samples" / "registry"
    subprocess.run([sys.executable, "-m", "offsite", "registry", "import", str(registry)],
                   env=env, check=True, capture_output=True)
    procs = []
    for name, args in (("worker", ["worker"]), ("ingest-mqtt", ["ingest", "mqtt"])):
        fh = open(logs / f"{name}.log", "wb")  # noqa: SIM115
        procs.append(subprocess.Popen([sys.executable, "-m", "offsite", *args], env=env,
                                      stdout=fh, stderr=subprocess.STDOUT))
    port = int(services.mqtt_url.rsplit(":", 1)[1])
    user, password = services.mqtt_credentials()
    flow = Flow(env, migrated_db, port, logs, user, password, metrics_port)
    try:
        _warm_up(flow)
        yield flow
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

