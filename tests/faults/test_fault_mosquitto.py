"""Mosquitto faults: the ingester's persistent session (stable client id, clean_session off,
QoS 1) keeps what was published while it was away, and survives a broker restart with
persistence on."""

from __future__ import annotations

import time
from typing import Any

Rig = Any  # tests/faults/conftest.py


def test_mqtt_ingester_away_and_mosquitto_restart(rig: Rig) -> None:
    # 1. the ingester is stopped; readings published meanwhile wait in its session
    rig.stop_proc("ingest")
    rig.publish(0, 100)
    time.sleep(1)
    assert rig.count() == 0
    rig.start_proc("ingest")
    rig.wait_for("the readings sent while the ingester was away",
                 lambda: rig.count() >= 100, timeout=60)
    rig.assert_exactly(range(100))

    # 2. the ingester is stopped, readings are queued for it, then mosquitto itself restarts:
    #    persistence keeps the session and its queued QoS 1 messages
    rig.stop_proc("ingest")
    rig.publish(100, 100)
    rig.services.restart("mosquitto")  # SIGTERM: saves its persistence file; same port
    rig.start_proc("ingest")
    rig.wait_for("the readings queued across the mosquitto restart",
                 lambda: rig.count() >= 200, timeout=60)
    rig.assert_exactly(range(200))

    # 3. mosquitto restarts with the ingester running: it reconnects by itself, flow resumes
    rig.services.restart("mosquitto")
    rig.publish(200, 100)  # the sender reconnects too; publish waits for each PUBACK
    rig.wait_for("the readings after the restart", lambda: rig.count() >= 300, timeout=60)
    time.sleep(1)
    rig.assert_exactly(range(300))
    assert rig.alive("worker") and rig.alive("ingest")
    log = (rig.logs / "ingest.log").read_text(errors="replace")
    assert "MQTT disconnected" in log
