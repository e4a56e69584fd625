"""Subcommands that run processes: worker, ingesters, migrations, up, demo, replay."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import typer

from offsite.settings import get_settings

ingest_app = typer.Typer(no_args_is_help=True, help="Ingesters: sources to Kafka topics.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
replay_app = typer.Typer(no_args_is_help=True, help="Replay real datasets as stations would.")


def _logging() -> None:
    logging.basicConfig(level=get_settings().log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def worker() -> None:
    """Run the Faust worker (all agents); add more workers to the group to scale out."""
    from streams.worker import run_worker

    run_worker(get_settings().log_level.lower())


def up() -> None:
    """Start embedded services for unset URLs, migrate, and run every process until Ctrl-C."""
    from offsite.runner import run

    run(get_settings(), demo=False, seconds=None)


def api(host: str = typer.Option(None, help="default: settings.api_host"),
        port: int = typer.Option(None, help="default: settings.api_port")) -> None:
    """Serve the HTTP API (stateless; run several behind a load balancer)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run("api.app:app", host=host or settings.api_host, port=port or settings.api_port,
                log_level=settings.log_level.lower())


def demo(seconds: float = typer.Option(
        None, envvar="DEMO_SECONDS", help="stop after this many seconds")) -> None:
    """`up` plus a replay of real sample data, printing what flows."""
    import shutil

    from offsite.runner import run

    settings = get_settings()
    # the demo starts from an empty state of its own so that what it prints is what flowed
    demo_settings = settings.model_copy(update={"state_dir": settings.state_dir / "demo"})
    shutil.rmtree(demo_settings.state_dir, ignore_errors=True)
    stored = run(demo_settings, demo=True, seconds=seconds)
    if stored == 0:
        typer.echo("no readings reached the database", err=True)
        raise typer.Exit(1)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations (idempotent)."""
    from storage.migrate import migrate

    url = get_settings().database_url
    if not url:
        raise typer.BadParameter("set OFFSITE_DATABASE_URL (or use `offsite up`)")
    flavor, applied = migrate(url)
    typer.echo(f"{flavor}: applied {applied or 'nothing new'}")


async def _run_until_signal(main: object) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)  # type: ignore[operator]


@ingest_app.command("mqtt")
def ingest_mqtt() -> None:
    """MQTT (JSON and HJ 212 payloads) to env.readings; acks only after Kafka has them."""
    from ingest.mqtt import MqttIngester
    from ingest.publisher import Publisher

    _logging()
    settings = get_settings()
    if not settings.mqtt_url or not settings.broker_url:
        raise typer.BadParameter("set OFFSITE_MQTT_URL and OFFSITE_BROKER_URL (or `offsite up`)")

    async def main(stop: asyncio.Event) -> None:
        publisher = Publisher(settings, source="mqtt")
        await publisher.start()
        try:
            await MqttIngester(settings, publisher).run(stop)
        finally:
            await publisher.stop()

    asyncio.run(_run_until_signal(main))


@replay_app.command("sensors")
def replay_sensors(
    csv_path: Path = typer.Argument(..., exists=True, dir_okay=False),
    station: str = typer.Option(..., "--station"),
    rate: float = typer.Option(0.0, help="readings per second; 0 = as fast as possible"),
    limit: int = typer.Option(None, help="stop after this many rows"),
    as_: str = typer.Option("json", "--as", help="json (MQTT) for now"),
) -> None:
    """Publish the Beijing multi-site CSV as hourly readings of one station over MQTT."""
    from ingest.replay import beijing_rows, replay_json

    url = get_settings().mqtt_url or os.environ.get("OFFSITE_MQTT_URL")
    if not url:
        raise typer.BadParameter("set OFFSITE_MQTT_URL")
    if as_ != "json":
        raise typer.BadParameter("--as json is the supported format")
    sent = replay_json(url, station, beijing_rows(csv_path, limit), rate=rate)
    typer.echo(f"published {sent} readings for {station}")
