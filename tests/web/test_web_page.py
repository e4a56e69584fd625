"""The monitoring-center page in a real headless Chromium, driven over the DevTools Protocol.

A real uvicorn server on a fresh database serves the page and the API; Debian's ``chromium``
opens ``/ui/?token=...``; the test reads the page with ``Runtime.evaluate``. Checked: zones
are drawn as SVG paths, a clue inserted into the database appears in the list within 2 s
without a reload (EventSource on ``/clues/stream`` with ``access_token``), and the evidence
viewer shows a clue's PNG evidence. A missing ``chromium`` fails the test (never a skip).
The DevTools websocket client is a small stdlib one, so nothing is downloaded.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import psycopg
import pytest

from storage.users import add_user, issue_token

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = Path(tempfile.gettempdir()) / "offsite-web-page.png"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-extensions",
                  "--window-size=1400,900", "--remote-debugging-port=0",
                  "--remote-allow-origins=*"]


# ---- a minimal websocket client (RFC 6455, client side) and DevTools session -------------

class WebSocket:
    def __init__(self, url: str, timeout: float = 10) -> None:
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "websocket handshake: connection closed"
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].split(b" ")[1] == b"101", head

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode())

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack(">H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack(">Q", self._read(8))
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("websocket closed by peer")
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if b0 & 0x80:
                    return message.decode()

    def close(self) -> None:
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class DevTools:
    """One page target: ``call`` a method, ``js`` an expression; keeps JS errors seen."""

    def __init__(self, ws_url: str) -> None:
        self.ws = WebSocket(ws_url)
        self.next_id = 0
        self.errors: list[str] = []

    def call(self, method: str, **params: Any) -> dict:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if msg.get("method") == "Runtime.exceptionThrown":
                self.errors.append(json.dumps(msg["params"]["exceptionDetails"])[:500])
            elif msg.get("method") == "Runtime.consoleAPICalled" and \
                    msg["params"].get("type") == "error":
                self.errors.append(json.dumps(msg["params"]["args"])[:500])

    def js(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                        awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.js(expression)
            except RuntimeError:  # the page is still loading: its elements are not there yet
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.js("document.body ? document.body.innerText.slice(0, 1500) : ''")
                pytest.fail(f"{what} (within {timeout} s); page errors: {self.errors};"
                            f" page text: {text!r}", pytrace=False)
            time.sleep(0.05)


# ---- fixtures ------------------------------------------------------------------------

@pytest.fixture()
def server(live_api: str, fresh_db: str) -> str:
    """The API over a database holding the demo registry (its zones are what /zones shows)."""
    from storage.registry import Actor, import_folder

    with psycopg.connect(fresh_db) as conn:
        center = "provincial-monitoring-center"
        import_folder(conn, ROOT / "samples" / "registry", default_owner=center,
                      actor=Actor("test", center))
    return live_api


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        pytest.fail("chromium is not installed: the web page tests need a real browser "
                    "(Debian package `chromium`, see scripts/install-system-deps.sh)",
                    pytrace=False)
    return found


@pytest.fixture()
def browser() -> Iterator[DevTools]:
    profile = Path(tempfile.mkdtemp(prefix="offsite-chromium-"))
    proc = subprocess.Popen([chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                             "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dev: DevTools | None = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
                pytest.fail(f"chromium did not open its DevTools port: {err}", pytrace=False)
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages: list[dict] = []
        while not pages:
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            pages = [t for t in targets if t.get("type") == "page"]
            assert pages or time.monotonic() < deadline, f"no page target: {targets}"
            time.sleep(0.1)
        dev = DevTools(pages[0]["webSocketDebuggerUrl"])
        dev.call("Runtime.enable")
        dev.call("Page.enable")
        yield dev
    finally:
        if dev is not None:
            dev.ws.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(profile, ignore_errors=True)


def token_for(url: str, name: str, department: str, role: str) -> str:
    with psycopg.connect(url) as conn:
        add_user(conn, name, department, role)
        _, token = issue_token(conn, name)
    return token


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def insert_clue(url: str, clue_id: str, lon: float, lat: float, modality: str = "env",
                kind: str = "exceedance") -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,"
            " confidence, location, summary) VALUES (%s, %s, %s, 'r', 'S1', 'open', now(),"
            " now(), 0.8, %s::jsonb, 'test clue')",
            (clue_id, modality, kind,
             json.dumps({"type": "Point", "coordinates": [lon, lat]})))


def seed(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO departments (id, name) VALUES ('water', 'w')")
        conn.execute("INSERT INTO stations (id, owner_dept) VALUES ('S1', 'water')")
        conn.execute("INSERT INTO cameras (id, owner_dept, url) VALUES ('C1', 'water',"
                     " 'rtsp://x')")
        conn.execute("INSERT INTO camera_health (time, camera, online, fps) VALUES"
                     " (now(), 'C1', true, 2.0)")
    insert_clue(url, "c-old", 119.9, 32.45, modality="video", kind="smoke")
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO evidence_keys (key_id, public_key_hex, public_key_pem) VALUES"
                     " ('k1', repeat('a', 64), 'pem')")
        conn.execute(
            "INSERT INTO evidence (time, id, clue_id, source, seq, fixed_at, sha256, prev_hash,"
            " record_hash, key_id, signature, media_type, name, content) VALUES (now(), 'ev1',"
            " 'c-old', 'station:S1', 1, now(), repeat('b', 64), repeat('0', 64),"
            " repeat('c', 64), 'k1', 's', 'image/png', 'frame.png', %s)",
            (png(64, 48, (200, 40, 40)),))
        conn.execute(  # not a playable video: the test checks only that a <video> gets it
            "INSERT INTO evidence (time, id, clue_id, source, seq, fixed_at, sha256, prev_hash,"
            " record_hash, key_id, signature, media_type, name, content) VALUES (now(), 'ev2',"
            " 'c-old', 'station:S1', 2, now(), repeat('d', 64), repeat('c', 64),"
            " repeat('e', 64), 'k1', 's', 'video/mp4', 'clip.mp4', 'not really mp4')")


# ---- tests ---------------------------------------------------------------------------

def test_page_served_and_stream_token_query(server: str, fresh_db: str) -> None:
    token = token_for(fresh_db, "op", "center", "center_operator")
    page = httpx.get(f"{server}/ui/", timeout=5)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "app.js" in page.text
    for name, kind in (("app.js", "javascript"), ("app.css", "css")):
        resp = httpx.get(f"{server}/ui/{name}", timeout=5)
        assert resp.status_code == 200 and kind in resp.headers["content-type"]
    assert httpx.get(f"{server}/ui/..%2Fauth.py", timeout=5).status_code == 404
    assert httpx.get(f"{server}/ui/missing.js", timeout=5).status_code == 404

    assert httpx.get(f"{server}/zones", timeout=5).status_code == 401
    zones = httpx.get(f"{server}/zones", headers={"Authorization": f"Bearer {token}"},
                      timeout=5).json()
    assert zones["type"] == "FeatureCollection" and len(zones["features"]) > 5
    water = httpx.get(f"{server}/zones?kind=water_source",
                      headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
    assert {f["properties"]["kind"] for f in water["features"]} == {"water_source"}

    # access_token works for the stream only (EventSource cannot send headers)
    assert httpx.get(f"{server}/clues", params={"access_token": token},
                     timeout=5).status_code == 401
    with httpx.stream("GET", f"{server}/clues/stream", params={"access_token": "nope"},
                      timeout=5) as resp:
        assert resp.status_code == 401
    with httpx.stream("GET", f"{server}/clues/stream", params={"access_token": token},
                      timeout=5) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")


def test_live_page_in_chromium(server: str, fresh_db: str, browser: DevTools) -> None:
    seed(fresh_db)
    token = token_for(fresh_db, "boss", "center", "admin")  # admins see evidence too
    browser.call("Page.navigate", url=f"{server}/ui/?token={token}")
    browser.wait_for("document.body && document.body.dataset.ready === '1' &&"
                     " document.getElementById('conn').textContent === 'live'", 15,
                     "page did not load and open the live stream")
    assert browser.js("localStorage.getItem('offsite.token')") == token
    assert "token=" not in browser.js("location.href")
    assert browser.js("document.getElementById('who').textContent").startswith("boss ")

    # zones as SVG paths, with a real outline each
    n_zones = len(httpx.get(f"{server}/zones", headers={"Authorization": f"Bearer {token}"},
                            timeout=5).json()["features"])
    paths = browser.js("[...document.querySelectorAll('#zones-layer path.zone')]"
                       ".map(p => p.getAttribute('d'))")
    assert len(paths) == n_zones and all(d and d.startswith("M") and "Z" in d for d in paths)
    assert browser.js("document.querySelector('#clues-layer circle[data-clue-id=\"c-old\"]')"
                      " !== null")
    assert browser.js("[...document.querySelectorAll('#clue-list li')]"
                      ".map(li => li.dataset.clueId)") == ["c-old"]
    browser.wait_for("document.querySelectorAll('#health tr').length >= 2", 5,
                     "health panel did not fill")
    assert "C1" in browser.js("document.getElementById('health').textContent")

    # a clue inserted into the database shows up without a reload, within 2 s
    browser.js("window.__marker = 'same page'")
    t0 = time.monotonic()
    insert_clue(fresh_db, "c-live", 119.85, 32.3)
    browser.wait_for("document.querySelector('#clue-list li[data-clue-id=\"c-live\"]')"
                     " !== null", 2, "the new clue did not appear on the page")
    assert time.monotonic() - t0 < 2
    assert browser.js("window.__marker") == "same page"  # no reload
    assert browser.js("document.querySelector('#clue-list li').dataset.clueId") == "c-live"

    # filters: modality video leaves only c-old
    browser.js("const s = document.getElementById('f-modality'); s.value = 'video';"
               " s.dispatchEvent(new Event('change'))")
    browser.wait_for("[...document.querySelectorAll('#clue-list li')].map(li =>"
                     " li.dataset.clueId).join() === 'c-old'", 5, "modality filter")

    # the evidence viewer shows the clue's PNG through a blob URL
    browser.js("document.querySelector('#clue-list li[data-clue-id=\"c-old\"]').click()")
    size = browser.wait_for(
        "(() => { const i = document.querySelector('#evidence img');"
        " return i && i.complete && i.naturalWidth > 0 && i.src.startsWith('blob:')"
        " ? [i.naturalWidth, i.naturalHeight] : null })()", 5,
        "the evidence image did not show")
    assert size == [64, 48]
    browser.wait_for("(document.querySelector('#evidence video') || {}).src", 5,
                     "the evidence video element did not appear")
    assert browser.js("document.querySelector('#evidence video').src").startswith("blob:")
    assert "smoke" in browser.js("document.getElementById('detail').textContent")

    shot = browser.call("Page.captureScreenshot", format="png")
    SCREENSHOT.write_bytes(base64.b64decode(shot["data"]))
    assert browser.errors == [], browser.errors


def test_page_asks_for_token(server: str, fresh_db: str, browser: DevTools) -> None:
    browser.call("Page.navigate", url=f"{server}/ui/")
    browser.wait_for("!document.getElementById('login').hidden", 10, "no login form")
    assert browser.js("document.getElementById('app').hidden") is True
    assert browser.js("getComputedStyle(document.getElementById('app')).display") == "none"
    token = token_for(fresh_db, "op", "center", "center_operator")
    browser.js(f"document.getElementById('token-input').value = {json.dumps(token)};"
               " document.getElementById('login-form').requestSubmit()")
    browser.wait_for("document.body.dataset.ready === '1'", 10, "sign-in did not load the page")
    browser.js("document.getElementById('logout').click()")
    browser.wait_for("!document.getElementById('login').hidden", 5, "sign-out")
    assert browser.js("localStorage.getItem('offsite.token')") is None

    browser.call("Page.navigate", url=f"{server}/ui/?token=not-a-token")
    browser.wait_for("document.getElementById('login-error').textContent === 'token rejected'",
                     10, "a bad token did not bring back the sign-in form")
    assert browser.js("document.getElementById('app').hidden") is True

