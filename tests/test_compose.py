"""docker-compose.yml runs only commands the CLI has, and keeps the production shape."""

from __future__ import annotations

import os
import pwd
import re
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
    assert {"OFFSITE_DB_PASSWORD", "OFFSITE_MQTT_PASSWORD"} <= required
    example = (ROOT / ".env.example").read_text()
    assert required <= set(re.findall(r"^(\w+)=", example, re.M))
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_compose_mosquitto_refuses_anonymous_clients(tmp_path: Path) -> None:
    """`deploy/mosquitto.conf` on a real Mosquitto (its port and data folder moved to this
    test's): an anonymous client is refused, one with the password file's account is not."""
    mosquitto = _require("mosquitto", "mosquitto")
    passwd = _require("mosquitto_passwd", "mosquitto")
    port = free_port()
    conf = (ROOT / "deploy" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf.splitlines()
    conf = conf.replace("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1")
    conf = conf.replace("/mosquitto/data", str(tmp_path))
    conf += f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"  # the container's is `mosquitto`
    (tmp_path / "mosquitto.conf").write_text(conf)
    (tmp_path / "passwd").touch()
    subprocess.run([passwd, "-b", str(tmp_path / "passwd"), "offsite", "s3cret"], check=True)
    proc = subprocess.Popen([mosquitto, "-c", str(tmp_path / "mosquitto.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _connect(port, None, None) == "Not authorized"
        assert _connect(port, "offsite", "wrong") == "Not authorized"
        assert _connect(port, "offsite", "s3cret") == "Success"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _connect(port: int, user: str | None, password: str | None) -> str:
    """The broker's answer to a CONNECT (waits up to 10 s for it to listen)."""
    answers: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    if user is not None:
        client.username_pw_set(user, password)
    client.on_connect = lambda _c, _u, _f, reason, _p: answers.append(str(reason))
    deadline = time.monotonic() + 10
    while True:
        try:
            client.connect("127.0.0.1", port)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        while not answers and time.monotonic() < deadline:
            client.loop(timeout=0.2)
    finally:
        client.disconnect()
    assert answers, "no CONNACK from the broker"
    return answers[0]
