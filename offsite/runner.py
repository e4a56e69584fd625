"""``offsite up`` and ``offsite demo``: embedded services plus every process, supervised.

URLs left unset in the settings are served by embedded services in the state folder; the
processes are children that get the URLs through the environment. Ctrl-C (or the demo's
time limit) stops the children first, then the services.
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

    def start_services(self) -> None:
        s = self.settings
        want = {"kafka": not s.broker_url, "postgres": not s.database_url, "mqtt": not s.mqtt_url}
        self.env = dict(os.environ)
        if any(want.values()):
            self.services = EmbeddedServices(s.state_dir / "services").start(**want)
            self.env.update(self.services.env())
        self.env.setdefault("OFFSITE_BROKER_URL", s.broker_url or "")
        self.env.setdefault("OFFSITE_DATABASE_URL", s.database_url or "")
        self.env.setdefault("OFFSITE_MQTT_URL", s.mqtt_url or "")
        flavor, applied = migrate(self.env["OFFSITE_DATABASE_URL"])
        console.print(f"database migrated ({flavor}); applied {applied or 'nothing new'}")

    def spawn(self, name: str, *args: str) -> None:
        logs = self.settings.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        fh = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen([sys.executable, "-m", "offsite", *args], env=self.env,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append((name, proc))

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
        table.add_row("Kafka broker", self.env["OFFSITE_BROKER_URL"])
        table.add_row("PostgreSQL", self.env["OFFSITE_DATABASE_URL"])
        table.add_row("MQTT", self.env["OFFSITE_MQTT_URL"])
        table.add_row("API", f"http://{self.settings.api_host}:{self.ports['api']}/docs")
        table.add_row("HJ 212 TCP", f"127.0.0.1:{self.ports['hj212']}")
        table.add_row("satellite inbox", str((self.settings.state_dir / "inbox").resolve()))
        table.add_row("state folder", str(self.settings.state_dir.resolve()))
        table.add_row("logs", str((self.settings.state_dir / "logs").resolve()))
        for name, proc in self.children:
            table.add_row(f"process {name}", f"pid {proc.pid}")
        return table


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
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("readings", "rejected", "clues")
        }


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
            for user, role, page in demo_tokens(sup.env["OFFSITE_DATABASE_URL"]):
                console.print(f"{role} page: {base}{page}  ({user})", soft_wrap=True)
            console.print("(the demo state is wiped at start)")
        console.print(sup.where())
        if demo:
            # MQTT drops what is sent before the ingester's first subscription exists
            sup.wait_for_log("ingest-mqtt", "MQTT subscribed", timeout=60)
            csv_path = SAMPLES / "sensors" / "beijing_dongsi_2013-2017.csv"
            sup.spawn("replay", "replay", "sensors", str(csv_path), "--station", DEMO_STATION,
                      "--rate", "200")
            sup.wait_for_log("ingest-hj212", "HJ 212 server listening", timeout=60)
            sup.spawn("replay-hj212", "replay", "sensors", str(csv_path), "--station",
                      DEMO_HJ212_STATION, "--as", "hj212", "--target",
                      f"tcp://127.0.0.1:{hj212_port}", "--limit", "5000")
            threading.Thread(target=drop_scenes, args=(inbox, stop), daemon=True).start()
            console.print(f"replaying {csv_path.name} as station {DEMO_STATION} (JSON over MQTT)"
                          f" and {DEMO_HJ212_STATION} (HJ 212 over TCP)")
        deadline = time.monotonic() + seconds if seconds else None
        last, last_t = 0, time.monotonic()
        while not stop.wait(5.0):
            now = time.monotonic()
            try:
                c = counts(sup.env["OFFSITE_DATABASE_URL"])
            except psycopg.Error as exc:
                console.print(f"database not reachable: {exc}")
                continue
            rate = (c["readings"] - last) / (now - last_t)
            last, last_t, stored = c["readings"], now, c["readings"]
            console.print(f"rows/s {rate:8.1f} | rows in readings {c['readings']:>8} | "
                          f"rejected {c['rejected']:>5} | clues {c['clues']:>5}")
            for name, proc in sup.children:
                if proc.poll() is not None and not name.startswith("replay"):
                    console.print(f"[red]{name} exited with {proc.returncode}; see its log[/red]")
                    stop.set()
            if deadline and now >= deadline:
                break
    finally:
        sup.stop()
        console.print("stopped cleanly")
    return stored
