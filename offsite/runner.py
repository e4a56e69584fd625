"""``offsite up`` and ``offsite demo``: embedded services plus every process, supervised.

URLs left unset in the settings are served by embedded services in the state folder; the
processes are children that get the URLs through the environment. Ctrl-C (or the demo's
time limit) stops the children first, then the services.

A child that dies is restarted by the supervisor (``Supervisor.check_children``), with a
back-off when it keeps dying (1 s doubling to 60 s); it never takes the others down. The
replay children of the demo are one-shot and are not restarted.

The demo replays four years of 2013-2017 readings re-stamped to end today (``replay
--end-now``), so it widens the live ingest time window (``OFFSITE_TIME_WINDOW_PAST_DAYS``)
to five years for its children; times outside 1970..2100 stay refused.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from rich.console import Console
from rich.table import Table

from contract.settings import Settings
from offsite.rtsp_server import RtspTestServer
from offsite.services import EmbeddedServices, free_port
from storage.migrate import migrate
from storage.queries import row_counts

console = Console()
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
DEMO_STATION = "BJ-DONGSI"
DEMO_CAMERA = "DEMO-CAM-1"
DEMO_HJ212_STATION = "BJDONGSI0000000000000212"
DEMO_REGISTRY = SAMPLES / "registry"  # the demo's resource pool, a registry folder


@dataclass
class Supervisor:
    settings: Settings
    services: EmbeddedServices | None = None
    children: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    rtsp: RtspTestServer | None = None
    broker_url: str = ""  # the URLs every child uses: configured, else embedded
    database_url: str = ""
    mqtt_url: str = ""
    argv: dict[str, list[str]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    _started: dict[str, float] = field(default_factory=dict)
    _due: dict[str, float] = field(default_factory=dict)

    def start_services(self) -> None:
        s = self.settings
        want = {"kafka": not s.broker_url, "postgres": not s.database_url, "mqtt": not s.mqtt_url}
        self.env = dict(os.environ)  # children inherit ours, plus the URLs settled here
        svc = EmbeddedServices(s.state_dir / "services")
        if any(want.values()):
            self.services = svc.start(**want)
            self.env.update(svc.env())
        self.broker_url = svc.broker_url or s.broker_url or ""
        self.database_url = svc.database_url or s.database_url or ""
        self.mqtt_url = svc.mqtt_url or s.mqtt_url or ""
        self.env.update({"OFFSITE_BROKER_URL": self.broker_url,
                         "OFFSITE_DATABASE_URL": self.database_url,
                         "OFFSITE_MQTT_URL": self.mqtt_url})
        # One state folder: the children keep keys, heads and media in the folder given to
        # `offsite up` (where `offsite evidence` and `offsite case` look), not in services/.
        self.env["OFFSITE_STATE_DIR"] = str(s.state_dir.resolve())
        adopt_legacy_state(s.state_dir)
        flavor, applied = migrate(self.database_url)
        console.print(f"database migrated ({flavor}); applied {applied or 'nothing new'}")

    def spawn(self, name: str, *args: str, argv: list[str] | None = None) -> None:
        """Start child ``name`` (``offsite <args>``, or ``argv``); remembered for restarts."""
        self.argv[name] = argv or [sys.executable, "-m", "offsite", *args]
        self._start(name, mode="wb")

    def _start(self, name: str, mode: str = "ab") -> None:
        logs = self.settings.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        fh = open(logs / f"{name}.log", mode)  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(self.argv[name], env=self.env or None, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
        fh.close()  # the child has its own descriptor
        self.children = [(n, p) for n, p in self.children if n != name] + [(name, proc)]
        self._started[name] = time.monotonic()

    def check_children(self, now: float | None = None) -> list[str]:
        """Restart children that died (not the one-shot ``replay*``); returns their names.

        One that dies within 30 s of its start waits before its next start (1 s, doubling
        up to 60 s), so a child that cannot run does not spin; the others keep running.
        """
        now = time.monotonic() if now is None else now
        restarted = []
        for name, proc in list(self.children):
            if proc.poll() is None or name.startswith("replay"):
                continue
            if name not in self._due:
                quick = now - self._started.get(name, now) < 30
                n = self.restarts.get(name, 0)
                self._due[name] = now + (min(60.0, 2.0 ** n) if quick else 0.0)
                console.print(f"[red]{name} exited with {proc.returncode}; restarting it"
                              f"{' in %.0fs' % (self._due[name] - now) if quick else ''}"
                              " (see its log)[/red]")
            if now >= self._due[name]:
                del self._due[name]
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self._start(name)
                restarted.append(name)
        return restarted

    def wait_for_log(self, name: str, text: str, timeout: float) -> bool:
        path = self.settings.state_dir / "logs" / f"{name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists() and text in path.read_text(errors="replace"):
                return True
            time.sleep(0.2)
        console.print(f"[yellow]{name} did not log {text!r} within {timeout:.0f}s[/yellow]")
        return False

    def stop(self) -> None:
        for _, proc in self.children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in self.children:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.children.clear()
        if self.rtsp:
            self.rtsp.stop()
        if self.services:
            self.services.stop()

    def port(self, name: str, wanted: int) -> int:
        """The configured port, or a free one when something else already holds it."""
        if name not in self.ports:
            with socket.socket() as probe:
                busy = probe.connect_ex(("127.0.0.1", wanted)) == 0
            self.ports[name] = free_port() if busy else wanted
        return self.ports[name]

    def where(self) -> Table:
        table = Table(title="Offsite is running", show_header=False)
        table.add_row("Kafka broker", self.broker_url)
        table.add_row("PostgreSQL", self.database_url)
        table.add_row("MQTT", self.mqtt_url)
        table.add_row("API", f"http://{self.settings.api_host}:{self.ports['api']}/docs")
        table.add_row("HJ 212 TCP", f"127.0.0.1:{self.ports['hj212']}")
        table.add_row("satellite inbox", str((self.settings.state_dir / "inbox").resolve()))
        table.add_row("state folder", str(self.settings.state_dir.resolve()))
        table.add_row("logs", str((self.settings.state_dir / "logs").resolve()))
        for name, proc in self.children:
            table.add_row(f"process {name}", f"pid {proc.pid}")
        return table


def adopt_legacy_state(state_dir: Path) -> None:
    """Move the key, heads, media and satellite index older versions wrote under ``services/``.

    Older ``offsite up`` gave its children ``<state>/services`` as their state folder, so
    the evidence key and media landed there; the operator's commands look in ``<state>``.
    Moving them (only where ``<state>`` has none of its own) keeps existing evidence
    verifiable with the same key, and scenes already ingested are not ingested again.
    """
    from storage.evidence_chain import KEY_FILE
    from storage.evidence_trust import HEADS_FILE

    old = state_dir / "services"
    for name in (KEY_FILE, HEADS_FILE, "evidence", "satellite"):
        src, dst = old / name, state_dir / name
        if src.exists() and not dst.exists():
            src.rename(dst)
            console.print(f"moved {src} to {dst} (one state folder)")


def drop_scenes(inbox: Path, stop: threading.Event) -> None:
    """Scenes arrive in the inbox as they would from a download job: the earlier date first."""
    for name in ("taizhou_2000_6band.tif", "taizhou_2003_6band.tif"):
        if stop.wait(10.0):
            return
        target = inbox / name
        shutil.copyfile(SAMPLES / "satellite" / "taizhou" / name, inbox / f".{name}.part")
        (inbox / f".{name}.part").rename(target)


# Who opens which page in the demo: (user, department, role, page). The inspector and the
# desk user belong to the department that owns the demo station and camera, so the clues
# they raise become the inspector's tasks and the desk's resources.
DEMO_USERS = (("demo-admin", "provincial-monitoring-center", "admin", "/ui/"),
              ("demo-inspector", "110101-ecology-environment", "inspector", "/ui/inspector"),
              ("demo-desk", "110101-ecology-environment", "department_user", "/ui/desk"),
              ("demo-water", "110101-water-resources", "department_user", "/ui/desk"))


def demo_tokens(database_url: str) -> list[tuple[str, str, str]]:
    """Users of the demo's own database, so each page can be opened right away:
    ``(user, role, page)`` with its token appended to the page address."""
    from storage.users import add_user, issue_token

    out = []
    with psycopg.connect(database_url) as conn:
        for user, department, role, page in DEMO_USERS:
            add_user(conn, user, department, role)
            out.append((user, role, f"{page}?token={issue_token(conn, user)[1]}"))
    return out


def import_demo_registry(sup: Supervisor, camera_url: str) -> None:
    """Import the demo's registry folder with ``offsite registry import``, as a province would.

    The folder (``samples/registry``) is copied into the state folder first, with the demo
    camera's URL set to where this run's RTSP server plays (a free port each time).
    """
    folder = sup.settings.state_dir / "registry"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(DEMO_REGISTRY, folder)
    cameras = folder / "cameras.csv"
    with cameras.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        if row["id"] == DEMO_CAMERA:
            row["url"] = camera_url
    with cameras.open("w", encoding="utf-8-sig", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    done = subprocess.run([sys.executable, "-m", "offsite", "registry", "import", str(folder)],
                          env=sup.env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"demo registry import failed:\n{done.stdout}{done.stderr}")
    console.print(f"registry imported from {DEMO_REGISTRY.relative_to(SAMPLES.parent)}:")
    for line in done.stdout.splitlines():
        console.print(f"  {line}")


def counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        return row_counts(conn, ("readings", "rejected", "clues"))


def run(settings: Settings, demo: bool, seconds: float | None) -> int:
    """Run until Ctrl-C or ``seconds``; returns the number of readings stored."""
    sup = Supervisor(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        console.print(f"\nsignal {signum}: stopping")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stored = 0
    try:
        sup.start_services()
        if demo:  # the replay sends four years of readings, re-stamped to end today
            sup.env.setdefault("OFFSITE_TIME_WINDOW_PAST_DAYS", str(5 * 366))
        rtsp_args = ["ingest", "rtsp"]
        if demo:
            # a real RTSP server fed by ffmpeg plays a sample video as camera DEMO-CAM-1
            sup.rtsp = RtspTestServer(settings.state_dir / "rtsp",
                                      SAMPLES / "video" / "person_room.mp4").start()
            # stations, camera, zones, departments and rules: before any process reads them
            import_demo_registry(sup, sup.rtsp.url)
            rtsp_args += ["--transport", "udp"]  # what this small test server carries
        sup.spawn("worker", "worker")
        sup.spawn("ingest-mqtt", "ingest", "mqtt")
        sup.spawn("ingest-rtsp", *rtsp_args)
        inbox = settings.state_dir / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        sup.spawn("ingest-satellite", "ingest", "satellite", "--inbox", str(inbox))
        api_port = sup.port("api", settings.api_port)
        sup.spawn("api", "api", "--port", str(api_port))
        hj212_port = sup.port("hj212", settings.hj212_port)
        # MN and PW are checked against the registry: a logger not registered (the demo's
        # is, in samples/registry) is refused with 9011 and its frames kept as dead letters
        sup.spawn("ingest-hj212", "ingest", "hj212", "--port", str(hj212_port))
        if demo:
            base = f"http://{settings.api_host}:{sup.ports['api']}"
            for user, role, page in demo_tokens(sup.database_url):
                console.print(f"{role} page: {base}{page}  ({user})", soft_wrap=True)
            console.print("(the demo state is wiped at start)")
        console.print(sup.where())
        if demo:
            # MQTT drops what is sent before the ingester's first subscription exists
            sup.wait_for_log("ingest-mqtt", "MQTT subscribed", timeout=60)
            csv_path = SAMPLES / "sensors" / "beijing_dongsi_2013-2017.csv"
            sup.spawn("replay", "replay", "sensors", str(csv_path), "--station", DEMO_STATION,
                      "--rate", "200", "--end-now")
            sup.wait_for_log("ingest-hj212", "HJ 212 server listening", timeout=60)
            sup.spawn("replay-hj212", "replay", "sensors", str(csv_path), "--station",
                      DEMO_HJ212_STATION, "--as", "hj212", "--target",
                      f"tcp://127.0.0.1:{hj212_port}", "--tail", "5000", "--end-now")
            threading.Thread(target=drop_scenes, args=(inbox, stop), daemon=True).start()
            console.print(f"replaying {csv_path.name}, re-stamped to end today, as station "
                          f"{DEMO_STATION} (JSON over MQTT) and {DEMO_HJ212_STATION} (HJ 212 "
                          "over TCP)")
        deadline = time.monotonic() + seconds if seconds else None
        last, last_t = 0, time.monotonic()
        while not stop.wait(5.0):
            now = time.monotonic()
            sup.check_children(now)  # before the database: it may be what is away
            try:
                c = counts(sup.database_url)
            except psycopg.Error as exc:
                console.print(f"database not reachable: {exc}")
                continue
            rate = (c["readings"] - last) / (now - last_t)
            last, last_t, stored = c["readings"], now, c["readings"]
            console.print(f"rows/s {rate:8.1f} | rows in readings {c['readings']:>8} | "
                          f"rejected {c['rejected']:>5} | clues {c['clues']:>5}")
            if deadline and now >= deadline:
                break
    finally:
        sup.stop()
        console.print("stopped cleanly")
    return stored
