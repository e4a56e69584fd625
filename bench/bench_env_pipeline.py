"""End-to-end environmental pipeline: MQTT -> Kafka -> Faust worker -> PostgreSQL (issue 9.1).

Everything runs on embedded services this module starts in ``.state/bench-env`` (Tansu,
PostgreSQL, Mosquitto), with the real ``offsite worker`` and ``offsite ingest mqtt`` as child
processes, as ``offsite up`` runs them. Ingest path: MQTT QoS 1, one message a JSON array of
``BATCH`` hourly readings of one station (6 codes each) -- the batched form the MQTT ingester
accepts; HJ 212 carries one reading per frame and was not measured here.

Phases, one run:

1. throughput: messages published as fast as the pipeline takes them (closed loop: at most
   ``MAX_OUTSTANDING`` messages sent but not yet in ``readings``) for ``seconds``;
   sustained readings/s = readings sent / (time the last row is in ``readings`` - first
   publish). A reading is one station-hour with 6 values, so it is 6 rows. The env
   detector is a second consumer of the same records and may lag behind the readings
   sink, so right after the last message each *probe* station (one per partition at least,
   30 normal hours sent beforehand) gets an SO2 exceedance: once every probe's clue row is
   there the detector has seen all the data before it on its partition, and readings sent /
   (last probe clue - first publish) is the rate with detection included.
2. latency at a paced load (half the throughput with detection included): publish -> row in
   ``readings`` per message, and publish -> clue row for injected SO2 1-hour exceedances (one
   per clue station, 900 ug/m3 after 30 normal hours). Arrival is seen by polling every
   ``POLL_S``: per station ``max(time)`` through the primary key (one station is one Kafka
   key, so its rows land in order); the poll period adds up to ``POLL_S`` to each figure.
3. floor: the same number of readings (same times, values, codes; station ids prefixed
   ``FLOOR-`` so they are new rows, registered as the pipeline's stations are) written by
   ``storage.sinks.ReadingsSink`` (binary COPY + staging + INSERT ON CONFLICT) in batches
   of 500 readings, the worker's own batch size.

CPU seconds per process (worker, ingester, Tansu, PostgreSQL with its backends, Mosquitto)
are read from /proc over the throughput phase: they say where the time goes.

With ``--workers 2`` the bench starts two ``offsite worker`` processes in the consumer group
(partitions spread between them; the CPU figure sums both); ``--workers 1,2`` runs the whole
bench once per count, fresh services each time, and prints the runs side by side.

With ``--storage-only`` each worker count first runs phase 1 and the floor with
``bench.storage_worker`` (the worker less its env detection: the storage path alone), then
the whole bench: the ceiling and the pipeline side by side.

Run: ``.venv/bin/python -m bench.bench_env_pipeline [--quick] [--seconds 40] [--pace 400]
[--workers 1,2] [--storage-only]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from bench.bench_env_neighbour_latency import CLEAN_H as NB_CLEAN_H
from bench.bench_env_neighbour_latency import EPISODES as NB_EPISODES
from bench.bench_env_neighbour_latency import HISTORY_H as NB_HISTORY_H
from bench.bench_env_neighbour_latency import SOURCE_H as NB_SOURCE_H
from bench.bench_env_neighbour_latency import NeighbourLatency
from bench.bench_env_neighbour_latency import sites as nb_sites
from contract.records import Reading
from contract.settings import Settings
from contract.topics import ENV_HOURS
from offsite.services import EmbeddedServices, remove_state
from storage.db import open_pool
from storage.migrate import migrate
from storage.sinks import ReadingsSink

STATE = Path(".state/bench-env")
BATCH = 100  # readings per MQTT message
IN_FLIGHT = 200  # un-acknowledged QoS 1 messages the publisher allows
MAX_OUTSTANDING = 200  # messages published but not yet seen in `readings` (throughput phase)
POLL_S = 0.05
NB_CLUSTERS = 2  # neighbour-latency clusters of 7 stations (bench_env_neighbour_latency)
GROUP_SETTLE_S = 15.0  # with several workers: time for the group to rebalance before phases
CODES = {"a34004": 30.0, "a34002": 60.0, "a21026": 6.0, "a21004": 40.0, "a21005": 0.8,
         "a05024": 60.0}
HOUR = timedelta(hours=1)


def values(rng: random.Random) -> dict[str, float]:
    """Ordinary air: uniform noise around typical levels (no flatline, spike or limit)."""
    return {c: round(v * (0.7 + 0.6 * rng.random()), 3) for c, v in CODES.items()}


def doc(t: datetime, vals: dict[str, float]) -> dict[str, Any]:
    return {"time": t.isoformat(), "period": "hour", "values": vals, "interval_s": 3600}


# -- process CPU from /proc ------------------------------------------------------------------

def _cpu_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, utime + stime in seconds) for every process."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def tree_cpu(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds of each named process and its descendants (postgres backends)."""
    table = _cpu_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    result = {}
    for name, root in roots.items():
        total, stack = 0.0, [root]
        while stack:
            pid = stack.pop()
            total += table.get(pid, (0, 0.0))[1]
            stack.extend(children.get(pid, []))
        result[name] = total
    return result


# -- publisher and arrival tracker ----------------------------------------------------------

class Publisher:
    def __init__(self, mqtt_url: str) -> None:
        url = urlparse(mqtt_url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="offsite-bench-pub")
        self.client.max_inflight_messages_set(IN_FLIGHT)
        self.client.max_queued_messages_set(IN_FLIGHT * 2)
        if url.username:
            self.client.username_pw_set(url.username, url.password)
        self.client.connect(url.hostname or "127.0.0.1", url.port or 1883, keepalive=60)
        self.client.loop_start()
        self.pending: deque[mqtt.MQTTMessageInfo] = deque()

    def publish(self, station: str, payload: bytes) -> float:
        """Queue one QoS 1 message; returns the send timestamp (monotonic)."""
        while len(self.pending) >= IN_FLIGHT:
            self.pending.popleft().wait_for_publish(timeout=60)
        sent = time.monotonic()
        self.pending.append(self.client.publish(f"offsite/env/{station}/json", payload, qos=1))
        return sent

    def close(self) -> None:
        for info in self.pending:
            info.wait_for_publish(timeout=60)
        self.client.loop_stop()
        self.client.disconnect()


class Tracker(threading.Thread):
    """Polls per-station max(time) of ``readings`` and the clue rows of clue stations."""

    def __init__(self, database_url: str) -> None:
        super().__init__(daemon=True)
        self.url = database_url
        self.lock = threading.Lock()
        self.pending: dict[str, deque[tuple[datetime, float]]] = {}
        self.latencies: list[float] = []
        self.clue_sent: dict[str, float] = {}
        self.clue_latencies: list[float] = []
        self.last_arrival = 0.0
        self.last_clue = 0.0
        self.stop_flag = threading.Event()

    def expect(self, station: str, last_time: datetime, sent: float) -> None:
        with self.lock:
            self.pending.setdefault(station, deque()).append((last_time, sent))

    def expect_clue(self, station: str, sent: float) -> None:
        with self.lock:
            self.clue_sent[station] = sent

    def outstanding(self) -> int:
        with self.lock:
            return sum(len(q) for q in self.pending.values()) + len(self.clue_sent)

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop_flag.is_set():
                self.poll(conn)
                time.sleep(POLL_S)

    def poll(self, conn: psycopg.Connection) -> None:
        with self.lock:
            stations = [s for s, q in self.pending.items() if q]
            clue_stations = list(self.clue_sent)
        if stations:
            rows = conn.execute(
                "SELECT s, (SELECT max(time) FROM readings r WHERE r.station = s"
                " AND r.code = 'a34004' AND r.period = 'hour') FROM unnest(%s::text[]) AS s",
                (stations,)).fetchall()
            now = time.monotonic()
            with self.lock:
                for station, newest in rows:
                    q = self.pending[station]
                    while newest is not None and q and q[0][0] <= newest:
                        self.latencies.append(now - q.popleft()[1])
                        self.last_arrival = now
        if clue_stations:
            rows = conn.execute("SELECT DISTINCT subject FROM clues WHERE kind = 'exceedance'"
                                " AND subject = ANY(%s)", (clue_stations,)).fetchall()
            now = time.monotonic()
            with self.lock:
                for (station,) in rows:
                    self.clue_latencies.append(now - self.clue_sent.pop(station))
                    self.last_clue = now

    def take(self) -> tuple[list[float], list[float]]:
        with self.lock:
            out = self.latencies, self.clue_latencies
            self.latencies, self.clue_latencies = [], []
            return out

    def wait_drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.outstanding():
                return True
            time.sleep(0.1)
        return False


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


# -- the run --------------------------------------------------------------------------------

def spawn(env: dict[str, str], logs: Path, name: str, *args: str,
          module: str = "offsite") -> subprocess.Popen:
    fh = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - owned by the child
    return subprocess.Popen([sys.executable, "-m", module, *args], env=env, stdout=fh,
                            stderr=subprocess.STDOUT, start_new_session=True)


def probe_stations(partitions: int) -> list[str]:
    """Station ids whose Kafka keys cover every partition of ``env.readings`` (the
    producer's own partitioner decides), two per partition."""
    from aiokafka.partitioner import DefaultPartitioner

    part, chosen, seen = DefaultPartitioner(), [], {p: 0 for p in range(partitions)}
    every = list(range(partitions))
    for k in range(10_000):
        st = f"BENCH-PROBE-{k:03d}"
        p = part(st.encode(), every, every)
        if seen[p] < 2:
            seen[p] += 1
            chosen.append(st)
        if all(n == 2 for n in seen.values()):
            return chosen
    raise RuntimeError("no probe stations for every partition")


def exceedance(t: datetime, rng: random.Random) -> bytes:
    """One hourly reading with SO2 at 900 ug/m3: a 1-hour exceedance clue on arrival."""
    return json.dumps(doc(t, {**values(rng), "a21026": 900.0})).encode()


def warm_up(pub: Publisher, url: str, timeout: float = 180,
            station: str = "BENCH-WARMUP") -> None:
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        t = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - (1000 - n) * HOUR
        pub.publish(station, json.dumps(doc(t, {"a34004": float(n)})).encode())
        with psycopg.connect(url) as conn:
            if conn.execute("SELECT 1 FROM readings WHERE station = %s", (station,)).fetchone():
                return
        time.sleep(1)
    raise RuntimeError("the pipeline never delivered the warm-up reading")


def run_pipeline(svc: EmbeddedServices, seconds: float, stations: int, clue_stations: int,
                 paced_seconds: float, pace: float | None = None,
                 workers: int = 1, storage_only: bool = False,
                 max_outstanding: int = MAX_OUTSTANDING) -> dict[str, Any]:
    logs = STATE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **svc.env(), "OFFSITE_MQTT_CLIENT_ID": "offsite-bench-ingest",
           "OFFSITE_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
           # the full run's history reaches back further than live ingest's default window
           "OFFSITE_TIME_WINDOW_PAST_DAYS": "3650"}
    names = ["worker"] if workers == 1 else [f"worker-{k}" for k in range(workers)]
    procs = {name: spawn(env, logs, name, "worker") if not storage_only else
             spawn(env, logs, name, module="bench.storage_worker") for name in names}
    procs["ingest-mqtt"] = spawn(env, logs, "ingest-mqtt", "ingest", "mqtt")
    rng = random.Random(9)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    pub = Publisher(svc.mqtt_url)
    tracker = Tracker(svc.database_url)
    try:
        warm_up(pub, svc.database_url)
        if workers > 1:  # let the group settle: every worker joined, partitions spread
            time.sleep(GROUP_SETTLE_S)
            warm_up(pub, svc.database_url, station="BENCH-WARMUP-2")
        tracker.start()
        # clue and probe stations: 30 ordinary hours each, ending two hours ago
        probes = probe_stations(Settings().partitions)
        for st in [f"BENCH-CLUE-{k:03d}" for k in range(clue_stations)] + probes:
            docs = [doc(now - (32 - h) * HOUR, values(rng)) for h in range(30)]
            tracker.expect(st, now - 3 * HOUR, pub.publish(st, json.dumps(docs).encode()))
        if not tracker.wait_drained(120):
            raise RuntimeError("clue stations' history did not arrive")
        tracker.take()

        # 1. throughput: pre-built payloads, station-major hours, round robin over stations
        per_station = max(1, int(seconds * 40_000 / stations / BATCH)) * BATCH
        start = now - timedelta(hours=per_station + 48)
        payloads: list[tuple[str, datetime, bytes]] = []
        for block in range(per_station // BATCH):
            for s in range(stations):
                st = f"BENCH-TP-{s:04d}"
                times = [start + (block * BATCH + i) * HOUR for i in range(BATCH)]
                payloads.append((st, times[-1], json.dumps(
                    [doc(t, values(rng)) for t in times]).encode()))
        roots = {**{name: p.pid for name, p in procs.items()},
                 **{name: p.pid for name, p in svc.procs}}
        cpu0, bench0 = tree_cpu(roots), time.process_time()
        t0 = time.monotonic()
        sent = 0
        for st, last, payload in payloads:
            while tracker.outstanding() >= max_outstanding:  # closed loop: saturate, no backlog
                time.sleep(0.005)
            tracker.expect(st, last, pub.publish(st, payload))
            sent += BATCH
            if time.monotonic() - t0 > seconds:
                break
        t_sent = time.monotonic()
        for st in probes if not storage_only else ():  # behind all the data of its
            # partition: its clue seen = the detector caught up
            tracker.expect_clue(st, pub.publish(st, exceedance(now - 2 * HOUR, rng)))
        drained = tracker.wait_drained(180)
        end = time.monotonic()
        elapsed = (tracker.last_arrival if drained else end) - t0
        if storage_only:  # the ceiling: no detection, so no detected rate and no phases 2-3
            cpu1 = tree_cpu(roots)
            cpu = {k: round(cpu1[k] - cpu0[k], 1) for k in roots}
            cpu["bench"] = round(time.process_time() - bench0, 1)  # publisher and tracker
            return {"workers": workers, "storage_only": True, "readings_sent": sent,
                    "max_outstanding": max_outstanding, "drained": drained,
                    "readings_per_s": round(sent / elapsed), "cpu_s": cpu,
                    # all processes' CPU over the phase: 2.0 = both cores of this machine
                    "cores_busy": round(sum(cpu.values()) / (end - t0), 2),
                    "_floor_payloads": payloads[: sent // BATCH]}
        detected_elapsed = (tracker.last_clue if drained else end) - t0
        # the neighbour stage too: the region agent has judged every summary sent
        region_at = wait_region(svc.broker_url, Settings().app_id, timeout=180)
        region_elapsed = (region_at if region_at is not None else time.monotonic()) - t0
        cpu1 = tree_cpu(roots)
        tp_lat, probe_lat = tracker.take()
        throughput = sent / elapsed
        detected = sent / max(elapsed, detected_elapsed, region_elapsed)
        cpu = {k: round(cpu1[k] - cpu0[k], 1) for k in roots}
        if workers > 1:
            cpu["worker"] = round(sum(cpu[n] for n in names), 1)

        # 2. latency at a paced load: half the throughput with detection, one exceedance per
        # clue station
        rate = pace or detected / 2  # --pace: a fixed load, to compare runs at one rate
        paced_msgs = max(1, int(rate * paced_seconds / BATCH))
        interval = paced_seconds / paced_msgs
        clue_every = max(1, paced_msgs // max(1, clue_stations))
        p0 = time.monotonic()
        injected = 0
        for m in range(paced_msgs):
            wait = p0 + m * interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            st = f"BENCH-PACE-{m % stations:04d}"
            block = m // stations
            times = [start + (block * BATCH + i) * HOUR for i in range(BATCH)]
            payload = json.dumps([doc(t, values(rng)) for t in times]).encode()
            tracker.expect(st, times[-1], pub.publish(st, payload))
            if m % clue_every == 0 and injected < clue_stations:
                cst = f"BENCH-CLUE-{injected:03d}"
                sent_at = pub.publish(cst, exceedance(now - 2 * HOUR, rng))
                tracker.expect_clue(cst, sent_at)
                injected += 1
        paced_drained = tracker.wait_drained(60)
        paced_lat, clue_lat = tracker.take()
        p_end = time.monotonic()
        paced_region = wait_region(svc.broker_url, Settings().app_id, timeout=120)
        # 3. neighbour rules on their own (bench_env_neighbour_latency), one hour every 0.5 s
        nb_hours = NB_EPISODES * (NB_SOURCE_H + NB_CLEAN_H)
        neighbours = NeighbourLatency(pub.publish, svc.database_url,
                                      now - (NB_HISTORY_H + nb_hours + 2) * HOUR,
                                      NB_CLUSTERS, hour_every_s=0.5)
        neighbours.history()
        time.sleep(3.0)  # the history judged first: the live hours then go one by one
        nb = neighbours.measure(timeout=30)
        return {
            "workers": workers,
            "ingest": "mqtt-json-batch", "readings_per_message": BATCH, "codes_per_reading": 6,
            "readings_sent": sent, "publish_s": round(t_sent - t0, 2),
            "drained": drained, "readings_per_s": round(throughput),
            "rows_per_s": round(throughput * len(CODES)),
            "detected_readings_per_s": round(detected),
            "detector_lag_s": round(max(0.0, detected_elapsed - elapsed), 2),
            # how long after the readings rows the region stage had judged every summary
            # (committed offsets of env.hours, checked every 0.25 s; commits every 1 s)
            "region_lag_s": round(max(0.0, region_elapsed - elapsed), 2),
            "paced_region_lag_s": round(paced_region - p_end, 2)
            if paced_region is not None else None,
            "probe_clue_latency_max_s": round(max(probe_lat), 2) if probe_lat else None,
            "saturated_latency_p50_s": pct(tp_lat, 0.5),
            "saturated_latency_p99_s": pct(tp_lat, 0.99),
            "cpu_s": cpu, "cpu_window_s": round(end - t0, 1),
            # capacity planning: readings one fully used worker core takes, detection included
            # (readings sent / worker CPU seconds over the throughput phase, all workers)
            "readings_per_core_with_detection": round(sent / max(cpu["worker"], 1e-9)),
            "paced_readings_per_s": round(rate), "paced_drained": paced_drained,
            "latency_p50_s": pct(paced_lat, 0.5), "latency_p99_s": pct(paced_lat, 0.99),
            "latency_samples": len(paced_lat),
            "clue_latency_p50_s": pct(clue_lat, 0.5), "clue_latency_p99_s": pct(clue_lat, 0.99),
            "clue_latency_max_s": round(max(clue_lat), 4) if clue_lat else None,
            "clue_samples": len(clue_lat), "clues_injected": injected,
            # neighbour rules, apart: from the last neighbour's hour published to the row
            "neighbour_clue_latency_p50_s": pct(neighbours.latencies, 0.5),
            "neighbour_clue_latency_p99_s": pct(neighbours.latencies, 0.99), **nb,
            "_floor_payloads": payloads[: sent // BATCH],
        }
    finally:
        tracker.stop_flag.set()
        pub.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


async def floor(url: str, payloads: list[tuple[str, datetime, bytes]]) -> float:
    """Readings/s of ReadingsSink alone on the same readings (new station ids, registered
    as the pipeline's are: the sink counts the readings of unregistered stations, work the
    pipeline's registered stations do not cause)."""
    readings = [Reading.model_validate({**d, "station": "FLOOR-" + st, "source": "mqtt"})
                for st, _, payload in payloads for d in json.loads(payload)]
    pool = await open_pool(url)
    try:
        async with pool.connection() as conn:
            await conn.cursor().executemany(
                "INSERT INTO stations (id, st, interval_s, lon, lat) VALUES (%s, '22', 3600,"
                " 116.0, 39.5) ON CONFLICT DO NOTHING",
                [(s,) for s in sorted({r.station for r in readings})])
        sink = ReadingsSink()
        t0 = time.perf_counter()
        for i, r in enumerate(readings, 1):
            sink.add(r)
            if i % 500 == 0:
                await sink.flush(pool)
        await sink.flush(pool)
        return len(readings) / (time.perf_counter() - t0)
    finally:
        await pool.close()


def register_ambient(database_url: str, stations: int) -> int:
    """The throughput and paced stations as registered ambient stations (ST 22) on a grid
    of 0.1 degrees (about 9 x 11 km), so every one has neighbours within the 50 km of the
    neighbour rules and the region stage (hour summaries to ``env.hours``, the region
    agent's judging) runs on the bench's load as it would on a province's."""
    rows = [(sid, "22", 3600, lon, lat) for sid, lon, lat in nb_sites(NB_CLUSTERS)]
    for prefix, lon0 in (("BENCH-TP", 116.0), ("BENCH-PACE", 117.5)):
        for s in range(stations):
            rows.append((f"{prefix}-{s:04d}", "22", 3600, lon0 + 0.1 * (s % 5),
                         39.5 + 0.1 * (s // 5)))
    with psycopg.connect(database_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO stations (id, st, interval_s, lon, lat) VALUES (%s, %s, %s, %s, %s)",
            rows)
    return len(rows)


def wait_region(broker_url: str, group: str, timeout: float) -> float | None:
    """The monotonic time at which the worker group's committed offsets of ``env.hours``
    reached the topic's end (the region stage had judged every hour summary), or None."""
    return asyncio.run(_wait_region(broker_url, group, timeout))


async def _wait_region(broker_url: str, group: str, timeout: float) -> float | None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=broker_url.removeprefix("kafka://"),
                                group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        parts = [TopicPartition(ENV_HOURS.name, p)
                 for p in consumer.partitions_for_topic(ENV_HOURS.name) or ()]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ends = await consumer.end_offsets(parts)
            done = [((await consumer.committed(tp)) or 0) >= ends[tp] for tp in parts]
            if all(done):
                return time.monotonic()
            await asyncio.sleep(0.25)
        return None
    finally:
        await consumer.stop()


async def region_records(broker_url: str) -> dict[str, int]:
    """Records in ``env.hours`` (hour summaries the env agent sent) and in the region table's
    changelog (cells the region agent judged and wrote): the neighbour stage's share of the
    run, checked rather than assumed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=broker_url.removeprefix("kafka://"))
    await consumer.start()
    try:
        topics = await consumer.topics()
        out = {}
        for name in sorted(t for t in topics if t == ENV_HOURS.name or "env-region" in t):
            parts = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
            ends = await consumer.end_offsets(parts)
            starts = await consumer.beginning_offsets(parts)
            out[name] = sum(ends[tp] - starts[tp] for tp in parts)
        return out
    finally:
        await consumer.stop()


def main(quick: bool = False, seconds: float | None = None,
         pace: float | None = None, workers: int = 1,
         storage_only: bool = False,
         max_outstanding: int = MAX_OUTSTANDING) -> dict[str, Any]:
    """One run of the phases with ``workers`` worker processes in the consumer group."""
    seconds = seconds or (10.0 if quick else 40.0)
    stations = 20 if quick else 50
    remove_state(STATE)
    with EmbeddedServices(STATE / "services").start() as svc:
        migrate(svc.database_url)
        registered = register_ambient(svc.database_url, stations)
        result = run_pipeline(svc, seconds, stations=stations,
                              clue_stations=10 if quick else 20,
                              paced_seconds=10.0 if quick else 30.0, pace=pace,
                              workers=workers, storage_only=storage_only,
                              max_outstanding=max_outstanding)
        result["region_records"] = asyncio.run(region_records(svc.broker_url))
        payloads = result.pop("_floor_payloads")
        floor_rate = asyncio.run(floor(svc.database_url, payloads))
    result["registered_ambient_stations"] = registered
    result["floor_readings_per_s"] = round(floor_rate)
    result["floor_rows_per_s"] = round(floor_rate * len(CODES))
    result["ratio_to_floor"] = round(result["readings_per_s"] / floor_rate, 3)
    if not storage_only:
        result["detected_ratio_to_floor"] = round(result["detected_readings_per_s"] /
                                                  floor_rate, 3)
    result["goal_readings_per_s"] = 30_000
    result["goal_clue_p99_s"] = 1.0
    return {"benchmark": "env", "quick": quick, **result}


def compare(counts: list[int], quick: bool = False, seconds: float | None = None,
            pace: float | None = None, storage_only: bool = False,
            max_outstanding: int = MAX_OUTSTANDING) -> dict[str, Any]:
    """Runs with each worker count, one after another (fresh services each), side by side;
    with ``storage_only`` each count also without detection, right before."""
    runs = []
    for n in counts:
        if storage_only:
            runs.append(main(quick, seconds, pace, n, True, max_outstanding))
        runs.append(main(quick, seconds, pace, n, max_outstanding=max_outstanding))
    return {"benchmark": "env", "quick": quick, "runs": runs}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--pace", type=float, default=None,
                        help="readings/s of the latency phase (default: half the throughput)")
    parser.add_argument("--workers", default="1",
                        help="worker processes in the group; a list (1,2) runs each in turn")
    parser.add_argument("--storage-only", action="store_true",
                        help="also run each worker count without detection (the ceiling)")
    parser.add_argument("--outstanding", type=int, default=MAX_OUTSTANDING,
                        help="messages published but not yet stored (throughput phase)")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    if args.storage_only or len(counts) > 1:
        print(json.dumps(compare(counts, args.quick, args.seconds, args.pace,
                                 args.storage_only, args.outstanding)))
    else:
        print(json.dumps(main(args.quick, args.seconds, args.pace, counts[0],
                              max_outstanding=args.outstanding)))
