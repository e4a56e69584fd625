"""docker-compose.yml runs only commands the CLI has, and keeps the production shape."""

from __future__ import annotations

from pathlib import Path

import typer.main
import yaml

from offsite.cli import app

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
