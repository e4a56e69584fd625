"""``offsite up`` and ``offsite demo``: embedded services plus every process, supervised.

URLs left unset in the settings are served by embedded services in the state folder; the
processes are children that get the URLs through the environment. Ctrl-C (or the demo's
time limit) stops the children first, then the services.
"""

from __future__ import annotations

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
from storage.cameras import register_camera
from storage.migrate import migrate
from storage.queries import row_counts

console = Console()
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
DEMO_STATION = "BJ-DONGSI"
DEMO_CAMERA = "DEMO-CAM-1"
DEMO_HJ212_STATION = "BJDONGSI0000000000000212"


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
        flavor, applied = migrate(self.database_url)
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


def drop_scenes(inbox: Path, stop: threading.Event) -> None:
    """Scenes arrive in the inbox as they would from a download job: the earlier date first."""
    for name in ("taizhou_2000_6band.tif", "taizhou_2003_6band.tif"):
        if stop.wait(10.0):
            return
        target = inbox / name
        shutil.copyfile(SAMPLES / "satellite" / "taizhou" / name, inbox / f".{name}.part")
        (inbox / f".{name}.part").rename(target)


def demo_operator_token(database_url: str) -> str:
    """An admin of the demo's own database, so the page can be opened right away."""
    from storage.users import add_user, issue_token

    with psycopg.connect(database_url) as conn:
        add_user(conn, "demo-admin", "provincial-monitoring-center", "admin")
        return issue_token(conn, "demo-admin")[1]


def register_demo_camera(database_url: str, url: str) -> None:
    config = {"camera_id": DEMO_CAMERA, "timezone": "Asia/Shanghai",
              "zones": [{"name": "room", "points": [[0, 0], [1, 0], [1, 1], [0, 1]],
                         "objects": ["motion", "person"], "loitering_s": 20}]}
    with psycopg.connect(database_url) as conn:
        register_camera(conn, DEMO_CAMERA, "Demo camera (sample video)", url, 116.4175,
                        39.9295, config)


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
        sup.spawn("worker", "worker")
        sup.spawn("ingest-mqtt", "ingest", "mqtt")
        rtsp_args = ["ingest", "rtsp"]
        if demo:
            # a real RTSP server fed by ffmpeg plays a sample video as camera DEMO-CAM-1
            sup.rtsp = RtspTestServer(settings.state_dir / "rtsp",
                                      SAMPLES / "video" / "person_room.mp4").start()
            register_demo_camera(sup.database_url, sup.rtsp.url)
            rtsp_args += ["--transport", "udp"]  # what this small test server carries
        sup.spawn("ingest-rtsp", *rtsp_args)
        inbox = settings.state_dir / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        sup.spawn("ingest-satellite", "ingest", "satellite", "--inbox", str(inbox))
        api_port = sup.port("api", settings.api_port)
        sup.spawn("api", "api", "--port", str(api_port))
        hj212_port = sup.port("hj212", settings.hj212_port)
        # locally, loggers not yet in the stations table are accepted; production checks PW
        sup.spawn("ingest-hj212", "ingest", "hj212", "--port", str(hj212_port),
                  "--allow-unknown")
        if demo:
            token = demo_operator_token(sup.database_url)
            console.print(f"monitoring page: http://{settings.api_host}:{sup.ports['api']}"
                          f"/ui/?token={token}  (demo admin; the demo state is wiped at start)")
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
                c = counts(sup.database_url)
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
