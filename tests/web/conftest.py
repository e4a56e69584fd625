"""Fixtures of the page tests: the API over the demo registry, and Debian's Chromium driven
by Playwright for Python (``executable_path``: no browser is ever downloaded).

Every page opened through ``open_page`` records console errors and uncaught exceptions; the
test fails at teardown if there were any. Screenshots go under the test's own ``tmp_path``
(``shots`` folder), printed at the end so that a person can look at them.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from storage.users import add_user, issue_token

ROOT = Path(__file__).resolve().parents[2]
CENTER = "provincial-monitoring-center"
OWNER = "110101-ecology-environment"  # owns BJ-DONGSI and DEMO-CAM-1 in samples/registry


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: the page tests need a real browser "
                    "(Debian package `chromium`, see scripts/install-system-deps.sh)",
                    pytrace=False)
    return found


@pytest.fixture()
def server(live_api: str, fresh_db: str) -> str:
    """The API over a database holding the demo registry (stations, cameras, zones)."""
    from storage.registry import Actor, import_folder

    with psycopg.connect(fresh_db) as conn:
        import_folder(conn, ROOT / "samples" / "registry", default_owner=CENTER,
                      actor=Actor("test", CENTER))
    return live_api


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    # per module: Playwright's sync API keeps an event loop running in this thread while it
    # is open, and tests of other folders call asyncio.run()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_binary(), headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--lang=zh-CN",
                                           "--disable-dev-shm-usage"])
        yield browser
        browser.close()


class Pages:
    """Opens pages in fresh browser contexts and keeps their console errors and uncaught
    exceptions; ``allow`` names an error a test provokes on purpose (a rejected token)."""

    def __init__(self, browser, shots: Path) -> None:  # type: ignore[no-untyped-def]
        self.browser, self.shots = browser, shots
        self.contexts: list = []
        self.errors: list[str] = []
        self.allowed: list[str] = []

    def __call__(self, url: str, width: int = 1600, height: int = 1000,
                 **context_args: object):  # type: ignore[no-untyped-def]
        ctx = self.browser.new_context(viewport={"width": width, "height": height},
                                       **context_args)
        self.contexts.append(ctx)
        page = ctx.new_page()
        page.on("console", lambda m: self.errors.append(f"console error: {m.text}")
                if m.type == "error" else print(f"console {m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.goto(url)
        page.shots = self.shots
        return page

    def allow(self, text: str) -> None:
        self.allowed.append(text)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


@pytest.fixture()
def open_page(chromium, tmp_path: Path) -> Iterator[Pages]:  # type: ignore[no-untyped-def]
    shots = tmp_path / "shots"
    shots.mkdir()
    pages = Pages(chromium, shots)
    yield pages
    for ctx in pages.contexts:
        ctx.close()
    print(f"\nscreenshots in {shots}: {sorted(p.name for p in shots.iterdir())}")
    assert pages.unexpected() == [], pages.errors


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


def insert_clue(url: str, clue_id: str, *, modality: str, kind: str, subject: str, rule: str,
                location: dict | None, metrics: dict | None = None,
                department: str | None = None, zones: list | None = None,
                start: str = "now() - interval '2 hours'", state: str = "open") -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO clues (clue_id, modality, kind, rule, subject, state, start, time,"
            " confidence, location, metrics, summary, department, zones) VALUES"
            f" (%s, %s, %s, %s, %s, %s, {start}, now(), 0.8, %s::jsonb, %s::jsonb, 'test clue',"
            " %s, %s::jsonb)",
            (clue_id, modality, kind, rule, subject, state,
             json.dumps(location) if location else None, json.dumps(metrics or {}),
             department, json.dumps(zones or [])))


def add_evidence(url: str, evidence_id: str, clue_id: str, source: str, seq: int,
                 media_type: str, name: str, content: bytes) -> None:
    """A stored evidence row (fixed by hand: the pages only read it back). The API's own
    key is made first, as `offsite up` makes it before any evidence exists: the API refuses
    to make a key of its own once the database holds evidence (a wrong state folder)."""
    from contract.settings import get_settings
    from storage.evidence_chain import EvidenceSigner

    EvidenceSigner.load_or_create(get_settings().state_dir)
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO evidence_keys (key_id, public_key_hex, public_key_pem)"
                     " VALUES ('k1', repeat('a', 64), 'pem') ON CONFLICT DO NOTHING")
        conn.execute(
            "INSERT INTO evidence (time, id, clue_id, source, seq, fixed_at, sha256, prev_hash,"
            " record_hash, key_id, signature, media_type, name, content) VALUES (now(), %s, %s,"
            " %s, %s, now(), repeat('b', 64), repeat('0', 64), repeat('c', 64), 'k1', 's', %s,"
            " %s, %s)", (evidence_id, clue_id, source, seq, media_type, name, content))
