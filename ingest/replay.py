"""Replay real datasets as a station would send them, so demos and benchmarks run on real data.

The Beijing multi-site CSV (UCI, hourly, Beijing time, µg/m³; CO in µg/m³) becomes hourly
JSON readings on ``offsite/env/{station}/json`` with HJ 212-2017 codes.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

BEIJING = timezone(timedelta(hours=8))
# column -> (HJ 212-2017 code, factor to the code's unit)
BEIJING_COLUMNS = {"PM2.5": ("a34004", 1.0), "PM10": ("a34002", 1.0), "SO2": ("a21026", 1.0),
                   "NO2": ("a21004", 1.0), "CO": ("a21005", 0.001), "O3": ("a05024", 1.0)}
MAX_IN_FLIGHT = 1000


def beijing_rows(path: Path, limit: int | None = None) -> Iterator[dict]:
    """JSON readings from the UCI Beijing CSV; 'NA' cells are left out, not zero."""
    with path.open(newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh)):
            if limit is not None and n >= limit:
                return
            moment = datetime(int(row["year"]), int(row["month"]), int(row["day"]),
                              int(row["hour"]), tzinfo=BEIJING)
            values = {code: round(float(row[col]) * factor, 4)
                      for col, (code, factor) in BEIJING_COLUMNS.items()
                      if row.get(col) not in (None, "", "NA")}
            yield {"time": moment.isoformat(), "period": "hour", "values": values,
                   "interval_s": 3600}


def connect(mqtt_url: str, client_id: str) -> mqtt.Client:
    url = urlparse(mqtt_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_queued_messages_set(MAX_IN_FLIGHT * 2)
    client.max_inflight_messages_set(MAX_IN_FLIGHT)
    client.connect(url.hostname or "127.0.0.1", url.port or 1883, keepalive=30)
    client.loop_start()
    return client


def replay_json(mqtt_url: str, station: str, rows: Iterator[dict], rate: float = 0.0,
                stop: object = None) -> int:
    """Publish rows at ``rate`` readings per second (0: as fast as the broker takes them)."""
    client = connect(mqtt_url, f"offsite-replay-{station}")
    topic = f"offsite/env/{station}/json"
    pending: list[mqtt.MQTTMessageInfo] = []
    sent = 0
    started = time.monotonic()
    try:
        for doc in rows:
            if stop is not None and getattr(stop, "is_set", lambda: False)():
                break
            if not doc["values"]:
                continue
            pending.append(client.publish(topic, json.dumps(doc), qos=1))
            sent += 1
            if len(pending) >= MAX_IN_FLIGHT:  # publish() queues without bound: wait here
                pending.pop(0).wait_for_publish(timeout=30)
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        for info in pending:
            info.wait_for_publish(timeout=30)
    finally:
        client.loop_stop()
        client.disconnect()
    return sent
