"""Replay real datasets as a station would send them, so demos and benchmarks run on real data.

The Beijing multi-site CSV (UCI, hourly, Beijing time, µg/m³; CO in µg/m³) becomes hourly
JSON readings on ``offsite/env/{station}/json`` with HJ 212-2017 codes, or HJ 212-2017 hourly
data frames (CN 2061, ``-Avg`` values) sent to the HJ 212 TCP server -- waiting for each
9014, resending up to 3 times as a logger does -- or to ``offsite/env/{station}/hj212``.
"""

from __future__ import annotations

import csv
import json
import socket
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from contract.records import Reading
from ingest.hj212 import HJ212Error, build, parse_frame

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


def ending_now(path: Path, rows: Iterable[dict], now: datetime) -> Iterator[dict]:
    """``rows`` of the CSV at ``path`` re-stamped by whole days so that its last row falls on
    ``now``'s day (at most a day before ``now``).

    A demo replays old records through the live ingesters; re-stamped, they fall inside the
    live time window and the last days of the series are "today" for the pages and
    ``/stats``. Whole days keep each reading's local hour, so daily and hourly windows of the
    standards cover the same readings as in the original series.
    """
    last = max((datetime.fromisoformat(r["time"]) for r in beijing_rows(path)), default=None)
    if last is None:
        return
    shift = timedelta(days=(now - last).days)
    for row in rows:
        yield {**row, "time": (datetime.fromisoformat(row["time"]) + shift).isoformat()}


def connect(mqtt_url: str, client_id: str) -> mqtt.Client:
    url = urlparse(mqtt_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_queued_messages_set(MAX_IN_FLIGHT * 2)
    client.max_inflight_messages_set(MAX_IN_FLIGHT)
    if url.username:  # credentials carried by the URL (the embedded Mosquitto wants them)
        client.username_pw_set(url.username, url.password)
    client.connect(url.hostname or "127.0.0.1", url.port or 1883, keepalive=30)
    client.loop_start()
    return client


def replay_json(mqtt_url: str, station: str, rows: Iterator[dict], rate: float = 0.0,
                stop: object = None) -> int:
    """Publish rows at ``rate`` readings per second (0: as fast as the broker takes them)."""
    payloads = (json.dumps(doc).encode() for doc in rows if doc["values"])
    return _publish_mqtt(mqtt_url, f"offsite-replay-{station}", f"offsite/env/{station}/json",
                         payloads, rate, stop)


def _publish_mqtt(mqtt_url: str, client_id: str, topic: str, payloads: Iterable[bytes],
                  rate: float = 0.0, stop: object = None) -> int:
    client = connect(mqtt_url, client_id)
    pending: list[mqtt.MQTTMessageInfo] = []
    sent = 0
    started = time.monotonic()
    try:
        for payload in payloads:
            if stop is not None and getattr(stop, "is_set", lambda: False)():
                break
            pending.append(client.publish(topic, payload, qos=1))
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


class ReplayError(RuntimeError):
    """The HJ 212 server refused a frame or never answered it."""


def hj212_frames(station: str, rows: Iterable[dict], *, pw: str = "123456", st: str = "22",
                 ack: bool = True) -> Iterator[list[str]]:
    """HJ 212-2017 hourly uploads (CN 2061, Avg) per row: usually one frame, or a set of
    sub-packets sharing one QN. QNs are unique and increasing (now, then +1 ms a reading)."""
    qn_time = datetime.now(UTC)
    for doc in rows:
        if not doc["values"]:
            continue
        reading = Reading(station=station, time=datetime.fromisoformat(doc["time"]),
                          period="hour", values=doc["values"], interval_s=3600)
        qn_time += timedelta(milliseconds=1)
        yield build.data_frames(reading, st=st, pw=pw, ack=ack, qn=build.make_qn(qn_time))


def _await_answer(sock: socket.socket, buf: bytearray, qn: str, timeout: float) -> str:
    """Read lines until the 9014/9011 echoing ``qn``; return its CN (and QnRtn for 9011)."""
    deadline = time.monotonic() + timeout
    while True:
        while (end := buf.find(b"\n")) >= 0:
            line = bytes(buf[:end + 1])
            del buf[:end + 1]
            try:
                frame = parse_frame(line)
            except HJ212Error:
                continue
            if frame.qn != qn:
                continue
            if frame.cn == "9011":
                return f"9011 QnRtn={frame.extra.get('QnRtn')}"
            return frame.cn or ""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise ReplayError("the HJ 212 server closed the connection")
        buf += chunk


def replay_hj212_tcp(address: str, station: str, rows: Iterable[dict], *, pw: str = "123456",
                     st: str = "22", rate: float = 0.0, stop: object = None,
                     timeout: float = 5.0, retries: int = 3) -> int:
    """Send hourly frames to ``tcp://host:port`` and wait for each 9014 (QN echoed)."""
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    sent = 0
    started = time.monotonic()
    buf = bytearray()
    with socket.create_connection((host or "127.0.0.1", int(port)), timeout=30) as sock:
        for parts in hj212_frames(station, rows, pw=pw, st=st, ack=True):
            if stop is not None and getattr(stop, "is_set", lambda: False)():
                break
            for frame in parts:
                qn = parse_frame(frame).qn or ""
                for attempt in range(retries + 1):
                    sock.sendall(frame.encode())
                    try:
                        answer = _await_answer(sock, buf, qn, timeout)
                        break
                    except TimeoutError:
                        if attempt == retries:
                            raise ReplayError(f"no answer to QN {qn}") from None
                if answer != "9014":
                    raise ReplayError(f"server answered {answer} to QN {qn}")
            sent += 1
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    return sent


def replay_hj212_mqtt(mqtt_url: str, station: str, rows: Iterable[dict], *,
                      pw: str = "123456", st: str = "22", rate: float = 0.0,
                      stop: object = None) -> int:
    """Publish hourly frames (one MQTT message per frame) to offsite/env/{station}/hj212."""
    payloads = (f.encode() for parts in hj212_frames(station, rows, pw=pw, st=st, ack=False)
                for f in parts)
    return _publish_mqtt(mqtt_url, f"offsite-replay-hj212-{station}",
                         f"offsite/env/{station}/hj212", payloads, rate, stop)
