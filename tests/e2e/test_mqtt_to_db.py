"""A reading sent with mosquitto_pub reaches the readings table through MQTT, Kafka and Faust;
a malformed one ends in the dead-letter table and the ingester keeps going."""

from __future__ import annotations

import json
from typing import Any

Flow = Any  # the `flow` fixture of tests/e2e/conftest.py


def test_json_reading_reaches_database(flow: Flow) -> None:
    doc = {"time": "2026-11-25T08:00:00+08:00", "period": "hour",
           "values": {"a34004": 81.5, "a21026": 3.0}, "flags": {"a21026": "M"}}
    flow.publish("offsite/env/E2E-1/json", json.dumps(doc).encode())
    rows = flow.wait_for(
        "SELECT code, value, flag, period, source, time FROM readings WHERE station = 'E2E-1'"
        " ORDER BY code", lambda r: len(r) == 2)
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        ("a21026", 3.0, "M", "hour", "mqtt"), ("a34004", 81.5, "N", "hour", "mqtt")]
    assert rows[0][5].isoformat() == "2026-11-25T00:00:00+00:00"


def test_malformed_message_is_dead_lettered_and_ingest_continues(flow: Flow) -> None:
    bad = b'{"time": "2026-11-25T09:00:00", "values": {"a34004": "lots"}'
    flow.publish("offsite/env/E2E-2/json", bad)
    missing_tz = json.dumps({"time": "2026-11-25T09:00:00", "values": {"a34004": 1}}).encode()
    flow.publish("offsite/env/E2E-2/json", missing_tz)
    good = {"time": "2026-11-25T09:00:00+08:00", "values": {"a34004": 12.0}}
    flow.publish("offsite/env/E2E-2/json", json.dumps(good).encode())

    dead = flow.wait_for(
        "SELECT raw, source, reason, context->>'topic' FROM rejected"
        " WHERE context->>'topic' = 'offsite/env/E2E-2/json' ORDER BY time",
        lambda r: len(r) == 2)
    assert bytes(dead[0][0]) == bad and dead[0][1] == "mqtt" and "not JSON" in dead[0][2]
    assert bytes(dead[1][0]) == missing_tz and "timezone" in dead[1][2]
    flow.wait_for("SELECT value FROM readings WHERE station = 'E2E-2'",
                  lambda r: r == [(12.0,)])


def test_batch_of_readings_and_redelivery_is_idempotent(flow: Flow) -> None:
    batch = [{"time": f"2026-11-25T{h:02d}:00:00+08:00", "period": "hour",
              "values": {"a34002": 100.0 + h}} for h in range(24)]
    payload = json.dumps(batch).encode()
    flow.publish("offsite/env/E2E-3/json", payload)
    flow.publish("offsite/env/E2E-3/json", payload)  # sent twice
    marker = json.dumps({"time": "2026-11-26T00:00:00+08:00", "values": {"a34002": 1.0}})
    flow.publish("offsite/env/E2E-3/json", marker.encode())
    flow.wait_for("SELECT 1 FROM readings WHERE station = 'E2E-3' AND value = 1.0", bool)
    rows = flow.wait_for("SELECT count(*), sum(value) FROM readings WHERE station = 'E2E-3'",
                         lambda r: r[0][0] == 25)
    assert rows[0][1] == sum(100.0 + h for h in range(24)) + 1.0


def test_hj212_frame_over_mqtt_reaches_database(flow: Flow) -> None:
    from datetime import datetime, timedelta, timezone

    from contract.records import Reading
    from ingest.hj212.build import data_frame

    reading = Reading(station="E2E-HJ212-MN01", period="hour",
                      time=datetime(2026, 11, 25, 10, tzinfo=timezone(timedelta(hours=8))),
                      values={"a21026": 35.5, "a21002": 120.25})
    frame = data_frame(reading, st="31", qn="20261125100000000")
    flow.publish("offsite/env/E2E-HJ212-MN01/hj212", frame.encode())
    broken = frame[:-6] + "0000\r\n"  # CRC that matches no algorithm
    flow.publish("offsite/env/E2E-HJ212-MN01/hj212", broken.encode())
    rows = flow.wait_for("SELECT code, value, period, source FROM readings"
                         " WHERE station = 'E2E-HJ212-MN01' ORDER BY code",
                         lambda r: len(r) == 2)
    assert rows == [("a21002", 120.25, "hour", "mqtt-hj212"),
                    ("a21026", 35.5, "hour", "mqtt-hj212")]
    dead = flow.wait_for("SELECT raw, reason FROM rejected"
                         " WHERE context->>'topic' = 'offsite/env/E2E-HJ212-MN01/hj212'",
                         lambda r: len(r) == 1)
    assert bytes(dead[0][0]) == broken.encode() and "CRC" in dead[0][1]
