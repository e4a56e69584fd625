"""Neighbour-rule clue latency, reported apart from the per-station rules (issue 19.1).

A neighbour clue (``interference``, ``local_source``) can only be judged once every
neighbour's hour is in: the region stage waits for them (``streams.env_region``). So its
latency is measured from the moment the **last** station of the cluster published the hour
that completed the rule to the moment the clue's ``open`` event row is in ``clue_events``
(polled every ``POLL_S``). The completing hour is the clue's ``time`` (the last flagged
hour of the run when it opened).

Clusters of ``SIZE`` registered ambient stations a few km apart (``sites``; the env
bench registers them with its other stations), ``HISTORY_H`` ordinary hours each sent
first (a station is judged once two days of its own residuals against the neighbours are
known), then hour by hour, one message per station and hour, every ``hour_every_s``
seconds, the cluster's first station first and its neighbours after it: the first station
of each cluster gets a local source (PM10 +400, PM2.5 +200 µg/m³, far beyond any
neighbour spread) for ``SOURCE_H`` hours, then ``CLEAN_H`` clean hours (long enough for
the episode's CUSUM to run down, so the next source is a new episode), ``EPISODES`` times:
a clue per episode and code. Runs right after the env bench's paced phase, on its own:
its many one-reading messages would otherwise change the paced load the other latency
figures are measured at.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import psycopg

SIZE = 7
HISTORY_H = 60
SOURCE_H, CLEAN_H, EPISODES = 10, 20, 2
POLL_S = 0.05
HOUR = timedelta(hours=1)
PM25, PM10 = "a34004", "a34002"


def sites(clusters: int) -> list[tuple[str, float, float]]:
    """``(id, lon, lat)`` of the clusters' stations, 2-4 km apart, clusters 1 degree apart."""
    return [(f"BENCH-NB-{c}-{k}", 118.5 + c + 0.03 * k, 39.0 + 0.02 * (k % 2))
            for c in range(clusters) for k in range(SIZE)]


def _reading(t: datetime, rng: random.Random, extra: float = 0.0) -> dict[str, Any]:
    noise = 0.85 + 0.3 * rng.random()  # the cluster moves together; each station +-15 %
    return {"time": t.isoformat(), "period": "hour", "interval_s": 3600,
            "values": {PM25: round((40.0 + extra / 2) * noise, 2),
                       PM10: round((70.0 + extra) * noise, 2)}}


class NeighbourLatency(threading.Thread):
    """Publishes the clusters' hours and polls their clues' open events."""

    def __init__(self, publish: Any, database_url: str, start: datetime, clusters: int,
                 hour_every_s: float, seed: int = 21) -> None:
        super().__init__(daemon=True)
        self.publish, self.url, self.start_time = publish, database_url, start
        self.clusters, self.every, self.rng = clusters, hour_every_s, random.Random(seed)
        self.last_pub: dict[tuple[str, datetime], float] = {}  # (lead, hour) -> monotonic
        self.latencies: list[float] = []
        self.planted = 0

    def history(self) -> None:
        """Two and a half ordinary days per station, one message each."""
        for sid, _, _ in sites(self.clusters):
            docs = [_reading(self.start_time + h * HOUR, self.rng) for h in range(HISTORY_H)]
            self.publish(sid, json.dumps(docs).encode())

    def run(self) -> None:
        hours = EPISODES * (SOURCE_H + CLEAN_H)
        t0 = time.monotonic()
        for i in range(hours):
            wait = t0 + i * self.every - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            t = self.start_time + (HISTORY_H + i) * HOUR
            source = i % (SOURCE_H + CLEAN_H) < SOURCE_H
            self.planted += source and i % (SOURCE_H + CLEAN_H) == 0
            for c in range(self.clusters):
                lead = f"BENCH-NB-{c}-0"
                for k in range(SIZE):
                    extra = 400.0 if (k == 0 and source) else 0.0
                    sent = self.publish(f"BENCH-NB-{c}-{k}",
                                        json.dumps([_reading(t, self.rng, extra)]).encode())
                self.last_pub[(lead, t)] = sent  # the cluster's last station of that hour

    def measure(self, timeout: float) -> dict[str, Any]:
        """Publish the hours (``run``, in this thread's own thread) while polling the open
        events here; stop ``timeout`` s after the last hour at the latest."""
        self.start()
        leads = [f"BENCH-NB-{c}-0" for c in range(self.clusters)]
        seen: dict[str, float] = {}
        self.opened: list[tuple[str, datetime]] = []
        deadline = None
        with psycopg.connect(self.url, autocommit=True) as conn:
            while deadline is None or time.monotonic() < deadline:
                if deadline is None and not self.is_alive():
                    deadline = time.monotonic() + timeout
                rows = conn.execute(
                    "SELECT e.clue_id, c.subject, e.time FROM clue_events e JOIN clues c"
                    " USING (clue_id) WHERE e.state = 'open' AND c.kind = 'local_source'"
                    " AND c.subject = ANY(%s)", (leads,)).fetchall()
                now = time.monotonic()
                for clue_id, subject, hour in rows:
                    if clue_id not in seen:
                        seen[clue_id] = now
                        self.opened.append((subject, hour))
                        sent = self.last_pub.get((subject, hour))  # aware: compared in UTC
                        if sent is not None:
                            self.latencies.append(now - sent)
                if deadline is not None and len(seen) >= self.planted * self.clusters * 2:
                    break
                time.sleep(POLL_S)
        return {"neighbour_clusters": self.clusters, "neighbour_hour_every_s": self.every,
                "neighbour_episodes_planted": self.planted * self.clusters * 2,  # 2 codes
                "neighbour_clues_opened": len(seen),
                "neighbour_latency_samples": len(self.latencies)}
