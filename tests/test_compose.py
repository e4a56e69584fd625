"""docker-compose.yml runs only commands the CLI has, and keeps the production shape."""

from __future__ import annotations

import os
import pwd
import queue
import re
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
import typer.main
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from offsite.cli import app
from offsite.services import _require, free_port

ROOT = Path(__file__).resolve().parent.parent


def _resolves(argv: list[str]) -> bool:
    """Walk the command tree as the CLI would, then let the leaf parse its options."""
    command = typer.main.get_command(app)
    args = list(argv)
    while getattr(command, "commands", None) is not None:  # a group
        if not args or args[0].startswith("-"):
            return False
        sub = command.commands.get(args[0])
        if sub is None:
            return False
        command, args = sub, args[1:]
    try:
        command.make_context(command.name or "offsite", args)
    except Exception:  # click's usage errors: unknown option, missing or extra argument
        return False
    return True


def test_every_compose_command_exists_in_cli() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = {name: svc["command"] for name, svc in compose["services"].items()
                if "command" in svc and svc.get("image", "").startswith("offsite")}
    expected = {"migrate", "worker", "ingest-mqtt", "ingest-hj212", "ingest-rtsp",
                "ingest-satellite", "api"}
    assert expected <= commands.keys()
    for name, argv in commands.items():
        assert _resolves(argv), f"service {name}: `offsite {' '.join(argv)}` is not a command"


def test_cli_check_catches_unknown_commands() -> None:
    assert not _resolves(["ingest", "nonsense"])
    assert not _resolves(["ingest"])
    assert not _resolves(["api", "--no-such-option"])
    assert _resolves(["api", "--port", "8600"])


def test_production_services_persist_and_report_health() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert "KRaft" in (ROOT / "docker-compose.yml").read_text() or \
        services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in ("kafka", "timescaledb", "mosquitto"):
        assert "healthcheck" in services[name], name
        assert services[name].get("volumes"), name
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb")
    assert "mediamtx" in services["mediamtx"]["image"]
    assert "deploy" not in services["worker"] or "replicas" not in services["worker"]["deploy"]


def _environments() -> dict[str, dict[str, str]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    out = {"x-offsite": compose["x-offsite"]["environment"]}
    out.update({name: svc.get("environment") or {} for name, svc in compose["services"].items()})
    return out


def test_production_secrets_come_from_the_environment() -> None:
    """No password is written in the compose file: each one is a required variable (compose
    refuses to start without it), the database URLs carry none, and `.env.example` names
    every variable an operator must set."""
    required: set[str] = set()
    for name, env in _environments().items():
        for key, value in env.items():
            if "PASSWORD" in key:
                assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", str(value)), f"{name}: {key}={value}"
            if key.endswith("DATABASE_URL"):
                assert urlparse(value).password is None, f"{name}: a password in {key}"
            required |= set(re.findall(r"\$\{(\w+):\?", str(value)))
    assert {"DB_PASSWORD", "MQTT_PASSWORD"} <= required
    example = (ROOT / ".env.example").read_text()
    assert required <= set(re.findall(r"^(\w+)=", example, re.M))
    # Offsite's settings read a `.env` in the working folder too: none of these may be one
    assert not any(name.startswith("OFFSITE_") for name in re.findall(r"^(\w+)=", example, re.M))
    assert ".env" in (ROOT / ".gitignore").read_text().split()


class Broker:
    """The compose Mosquitto as `deploy/mosquitto-start.sh` starts it, on this machine: the
    same script, config and ACL, with the port, folders and system user moved to the
    test's."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.config, self.data = tmp / "config", tmp / "data"
        self.config.mkdir()
        self.data.mkdir()
        deploy = ROOT / "deploy"
        conf = (deploy / "mosquitto.conf").read_text()
        assert "allow_anonymous false" in conf.splitlines()
        conf = conf.replace("listener 1883 0.0.0.0", f"listener {self.port} 127.0.0.1")
        conf = conf.replace("/mosquitto/data", str(self.data))
        conf += f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"  # the image's: `mosquitto`
        (self.config / "mosquitto.conf").write_text(conf)
        (self.config / "mosquitto.acl").write_text((deploy / "mosquitto.acl").read_text())
        self.passwd = _require("mosquitto_passwd", "mosquitto")
        self.env = {**os.environ, "MOSQUITTO_CONFIG": str(self.config),
                    "MOSQUITTO_DATA": str(self.data),
                    "MOSQUITTO_BIN": _require("mosquitto", "mosquitto"),
                    "MQTT_USERNAME": "offsite", "MQTT_PASSWORD": "s3cret",
                    "PATH": f"{Path(self.passwd).parent}:{os.environ.get('PATH', '')}"}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["sh", str(ROOT / "deploy" / "mosquitto-start.sh")],
                                     env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def add_account(self, user: str, password: str) -> None:
        """As README "Production" says: mosquitto_passwd, then SIGHUP."""
        subprocess.run([self.passwd, "-b", str(self.data / "passwd"), user, password],
                       check=True)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class Client:
    """One MQTT client: its CONNACK, and the messages of its subscriptions."""

    def __init__(self, port: int, user: str | None, password: str | None = None) -> None:
        self.answers: list[str] = []
        self.got: queue.Queue = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self.answers.append(str(reason))
        self.client.on_message = lambda _c, _u, msg: self.got.put((msg.topic, msg.payload))
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.connect("127.0.0.1", port)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.client.loop_start()
        while not self.answers and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.answers, "no CONNACK from the broker"
        self.answer = self.answers[0]

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        time.sleep(0.3)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def received(self, wait: float = 1.0) -> list[tuple[str, bytes]]:
        out, deadline = [], time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                out.append(self.got.get(timeout=0.1))
            except queue.Empty:
                continue
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_compose_mosquitto_refuses_anonymous_clients_and_holds_accounts_to_their_topics(
        tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    broker.start()
    clients: list[Client] = []

    def connect(user: str | None, password: str | None = None) -> Client:
        clients.append(Client(broker.port, user, password))
        return clients[-1]

    try:
        assert connect(None).answer == "Not authorized"
        assert connect("offsite", "wrong").answer == "Not authorized"
        offsite = connect("offsite", "s3cret")
        assert offsite.answer == "Success"
        broker.add_account("ST-1", "pw1")
        broker.add_account("insp1", "pw2")
        station, inspector = connect("ST-1", "pw1"), connect("insp1", "pw2")
        assert (station.answer, inspector.answer) == ("Success", "Success")

        # a station publishes its own readings, never another's
        offsite.subscribe("offsite/env/+/json")
        station.publish("offsite/env/ST-1/json", b"own")
        station.publish("offsite/env/ST-2/json", b"forged")
        assert offsite.received() == [("offsite/env/ST-1/json", b"own")]

        # an inspector's terminal reads its own tasks; a station reads nobody's
        offsite.publish("offsite/tasks/insp1", b"task", retain=True)
        station.subscribe("offsite/tasks/#")
        inspector.subscribe("offsite/tasks/insp1")
        assert inspector.received() == [("offsite/tasks/insp1", b"task")]
        assert station.received() == []
        for c in clients:
            c.close()
        clients.clear()

        # a restart writes Offsite's account again and keeps the others
        broker.stop()
        broker.start()
        assert connect("ST-1", "pw1").answer == "Success"
    finally:
        for c in clients:
            c.close()
        broker.stop()
