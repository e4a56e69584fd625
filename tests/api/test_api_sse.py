"""The live clue stream on a real uvicorn server: LISTEN/NOTIFY to Server-Sent Events within
2 s, resume with Last-Event-ID, and no events about resources the caller may not see."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Callable

import httpx
import psycopg
import pytest


@pytest.fixture()
def server(live_api: str) -> str:
    return live_api


class Stream:
    """An httpx streaming SSE client read on a thread; events arrive on ``self.events``."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: queue.Queue = queue.Queue()
        self.opened = threading.Event()
        self.status: int | None = None
        self.sock: socket.socket | None = None
        self.client = httpx.Client(timeout=httpx.Timeout(5, read=None))
        self.thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self.thread.start()
        assert self.opened.wait(10), "stream did not open"

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self.client.stream("GET", url, headers=headers) as resp:
                self.status = resp.status_code
                self.sock = resp.extensions["network_stream"].get_extra_info("socket")
                event: dict[str, str] = {}
                for line in resp.iter_lines():
                    if line.startswith(": stream from"):
                        self.opened.set()
                    if not line:
                        if "data" in event:
                            self.events.put(event)
                        event = {}
                    elif not line.startswith(":"):
                        key, _, value = line.partition(":")
                        event[key] = value.removeprefix(" ")
        except Exception:
            pass
        finally:
            self.opened.set()

    def next(self, timeout: float) -> dict:
        event = self.events.get(timeout=timeout)
        return {"id": int(event["id"]), "event": event["event"], **json.loads(event["data"])}

    def close(self) -> None:
        """Drop the connection (as a client going away would) and wait for the reader."""
        if self.sock is not None:
            self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(5)
        assert not self.thread.is_alive()
        self.client.close()


def insert_clue(url: str, clue_id: str, subject: str = "S1", state: str = "open") -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,"
            " confidence) VALUES (%s, 'env', 'exceedance', 'r', %s, %s, now(), now(), 0.8)"
            " ON CONFLICT (clue_id) DO UPDATE SET state = EXCLUDED.state, time = now()",
            (clue_id, subject, state))


def test_clue_events_live_resume_and_filtered(server: str, fresh_db: str,
                                              make_user: Callable[..., dict]) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO departments (id, name) VALUES ('water', 'w'), ('eco', 'e')")
        conn.execute("INSERT INTO stations (id, owner_dept) VALUES ('S1', 'water'),"
                     " ('S2', 'eco')")
    center = make_user("op", "center", "center_operator")
    outsider = make_user("eve", "eco", "inspector")
    url = f"{server}/clues/stream"

    assert httpx.get(url, timeout=5).status_code == 401
    live = Stream(url, center)
    other = Stream(url, outsider)
    assert live.status == 200 and other.status == 200

    t0 = time.monotonic()
    insert_clue(fresh_db, "c1")
    first = live.next(timeout=2)
    assert time.monotonic() - t0 < 2
    assert first["clue_id"] == "c1" and first["event"] == "clue" and first["state"] == "open"
    insert_clue(fresh_db, "c1", state="closed")
    update = live.next(timeout=2)
    assert update["clue_id"] == "c1" and update["state"] == "closed"
    assert update["id"] > first["id"]

    # the outsider sees only clues about its own station
    insert_clue(fresh_db, "c-eco", subject="S2")
    assert other.next(timeout=2)["clue_id"] == "c-eco"
    assert live.next(timeout=2)["clue_id"] == "c-eco"  # center sees all
    with pytest.raises(queue.Empty):
        other.next(timeout=0.3)  # nothing about S1 leaked
    last_id = update["id"]
    live.close()
    other.close()

    # missed while disconnected: replayed from the table, then live again
    insert_clue(fresh_db, "c2")
    insert_clue(fresh_db, "c3")
    resumed = Stream(url, {**center, "Last-Event-ID": str(last_id)})
    got = [resumed.next(timeout=2) for _ in range(3)]
    assert [e["clue_id"] for e in got] == ["c-eco", "c2", "c3"]
    assert [e["id"] for e in got] == sorted(e["id"] for e in got)
    t0 = time.monotonic()
    insert_clue(fresh_db, "c4")
    assert resumed.next(timeout=2)["clue_id"] == "c4" and time.monotonic() - t0 < 2
    resumed.close()

    # no Last-Event-ID: live only, nothing replayed
    fresh = Stream(url, center)
    with pytest.raises(queue.Empty):
        fresh.next(timeout=0.3)
    fresh.close()

    # closed streams unsubscribe on the server
    from api.app import app

    deadline = time.monotonic() + 5
    while app.state.clue_feed.subscribers:
        assert time.monotonic() < deadline, "server kept closed streams subscribed"
        time.sleep(0.05)
