"""Subcommands that run processes: worker, ingesters, migrations, up, demo, replay."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime
from pathlib import Path

import typer

from contract.settings import get_settings

ingest_app = typer.Typer(no_args_is_help=True, help="Ingesters: sources to Kafka topics.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
replay_app = typer.Typer(no_args_is_help=True, help="Replay real datasets as stations would.")


def _logging() -> None:
    logging.basicConfig(level=get_settings().log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def worker() -> None:
    """Run the Faust worker (all agents); add more workers to the group to scale out."""
    from streams.worker import run_worker

    settings = get_settings()
    run_worker(settings, settings.log_level.lower())


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
    from offsite.runner import run
    from offsite.services import remove_state

    settings = get_settings()
    # the demo starts from an empty state of its own so that what it prints is what flowed
    demo_settings = settings.model_copy(update={"state_dir": settings.state_dir / "demo"})
    remove_state(demo_settings.state_dir)
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
    tail: int = typer.Option(None, help="only the last this many rows of the file"),
    as_: str = typer.Option("json", "--as", help="json (MQTT) or hj212 (hourly CN 2061 frames)"),
    target: str = typer.Option("mqtt", help="hj212 only: mqtt or tcp://host:port"),
    pw: str = typer.Option("123456", "--pw", help="hj212 only: the station's PW"),
    end_now: bool = typer.Option(
        False, "--end-now", help="re-stamp the readings by whole days so the series ends today "
        "(old records then pass the live ingest time window)"),
) -> None:
    """Publish the Beijing multi-site CSV as hourly readings of one station (MQTT or TCP)."""
    from ingest.replay import (
        beijing_rows,
        ending_now,
        replay_hj212_mqtt,
        replay_hj212_tcp,
        replay_json,
    )

    if as_ not in ("json", "hj212"):
        raise typer.BadParameter("--as json or --as hj212")
    rows = beijing_rows(csv_path, limit)
    if tail:
        rows = iter(list(rows)[-tail:])
    if end_now:
        rows = ending_now(csv_path, rows, datetime.now(UTC))
    if as_ == "hj212" and target.startswith("tcp://"):
        sent = replay_hj212_tcp(target, station, rows, pw=pw, rate=rate)
        typer.echo(f"sent {sent} readings for {station} to {target}, each acknowledged (9014)")
        return
    if target != "mqtt":
        raise typer.BadParameter("--target mqtt or tcp://host:port (tcp with --as hj212)")
    url = get_settings().mqtt_url
    if not url:
        raise typer.BadParameter("set OFFSITE_MQTT_URL")
    if as_ == "hj212":
        sent = replay_hj212_mqtt(url, station, rows, pw=pw, rate=rate)
    else:
        sent = replay_json(url, station, rows, rate=rate)
    typer.echo(f"published {sent} readings for {station}")


@ingest_app.command("hj212")
def ingest_hj212(
    port: int = typer.Option(..., "--port", help="TCP port (0: any free port, logged)"),
    host: str = typer.Option("127.0.0.1", "--host"),
    allow_unknown: bool = typer.Option(
        False, "--allow-unknown", help="accept MNs not in the stations table (demos)"),
    idle_timeout: float = typer.Option(
        600.0, help="close connections silent this long (3x a known station's interval_s)"),
) -> None:
    """HJ 212 TCP server for data loggers: readings to env.readings, 9014 after Kafka acks."""
    from datetime import timedelta, timezone

    from ingest.hj212.server import Hj212Server, Limits, StationRegistry
    from ingest.publisher import Publisher

    _logging()
    settings = get_settings()
    if not settings.broker_url:
        raise typer.BadParameter("set OFFSITE_BROKER_URL (or use `offsite up`)")
    if not settings.database_url and not allow_unknown:
        raise typer.BadParameter("set OFFSITE_DATABASE_URL (stations table) or --allow-unknown")

    async def main(stop: asyncio.Event) -> None:
        publisher = Publisher(settings, source="hj212-tcp")
        await publisher.start()
        registry = StationRegistry(settings.database_url, allow_unknown=allow_unknown)
        tz = timezone(timedelta(hours=settings.local_utc_offset_hours))
        server = Hj212Server(publisher, registry, Limits(idle_timeout=idle_timeout), tz=tz)
        try:
            await server.serve(stop, host, port)
        finally:
            await publisher.stop()

    asyncio.run(_run_until_signal(main))


@ingest_app.command("rtsp")
def ingest_rtsp(
    camera: list[str] = typer.Option(None, "--camera", help="ID=URL, repeatable (ad hoc)"),
    registry: bool = typer.Option(True, help="also run the cameras of the cameras table"),
    fps: float = typer.Option(2.0, help="frames/s published per camera (analysis rate)"),
    max_width: int = typer.Option(640, help="downscale wider frames to this width"),
    transport: str = typer.Option("tcp", help="RTSP transport: tcp, udp or prefer_tcp"),
    stall_s: float = typer.Option(5.0, help="no frame for this long: camera offline"),
    signal_loss_s: float = typer.Option(
        30.0, help="no frame this long: signal_loss clue (sent with the health records)"),
    backoff_max_s: float = typer.Option(30.0, help="longest wait between reconnects"),
) -> None:
    """IP cameras (RTSP) to video.frames and camera.health (the worker makes camera_health
    rows and signal_loss clues of the health records)."""
    from ingest.publisher import Publisher
    from ingest.rtsp import TRANSPORTS, RtspIngester, RtspOptions, parse_camera_option

    _logging()
    settings = get_settings()
    if not settings.broker_url:
        raise typer.BadParameter("set OFFSITE_BROKER_URL (or `offsite up`)")
    if transport not in TRANSPORTS:
        raise typer.BadParameter(f"--transport must be one of {', '.join(TRANSPORTS)}")
    try:
        extra = [parse_camera_option(c) for c in camera or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    options = RtspOptions(rate=fps, max_width=max_width, transport=transport, stall_s=stall_s,
                          signal_loss_s=signal_loss_s, backoff_max_s=backoff_max_s)

    async def main(stop: asyncio.Event) -> None:
        publisher = Publisher(settings, source="rtsp")
        await publisher.start()
        try:
            await RtspIngester(settings, publisher, options, extra, registry).run(stop)
        finally:
            await publisher.stop()

    asyncio.run(_run_until_signal(main))


@ingest_app.command("satellite")
def ingest_satellite(
    inbox: Path = typer.Option(..., "--inbox", file_okay=False, help="folder scenes arrive in"),
    tile_px: int = typer.Option(1024, help="tile side in pixels, rounded to whole blocks"),
    scan_s: float = typer.Option(2.0, help="seconds between inbox scans"),
    settle_s: float = typer.Option(1.0, help="take a file once unchanged this long"),
    once: bool = typer.Option(False, help="scan once and exit"),
) -> None:
    """GeoTIFF/COG files and STAC Items in an inbox to sat.scenes and sat.tiles; FIRMS CSVs
    in the inbox (and from OFFSITE_FIRMS_POLL_URL every OFFSITE_FIRMS_POLL_S) to sat.fires."""
    from ingest.firms import FirmsPoller
    from ingest.publisher import Publisher
    from ingest.satellite import InboxIngester, InboxOptions

    _logging()
    settings = get_settings()
    if not settings.broker_url:
        raise typer.BadParameter("set OFFSITE_BROKER_URL (or `offsite up`)")
    inbox.mkdir(parents=True, exist_ok=True)
    options = InboxOptions(tile_px=tile_px, settle_s=settle_s, scan_s=scan_s,
                           max_pixels=settings.satellite_max_pixels,
                           allowed_prefixes=tuple(settings.satellite_allowed_prefixes))

    async def main(stop: asyncio.Event) -> None:
        publisher = Publisher(settings, source="satellite-inbox")
        await publisher.start()
        try:
            ingester = InboxIngester(inbox, settings.state_dir / "satellite", publisher,
                                     options)
            poller = (FirmsPoller(settings.firms_poll_url, publisher, settings.firms_poll_s)
                      if settings.firms_poll_url else None)
            if once:
                await ingester.scan_once()
                if poller is not None:
                    await poller.poll_once()
            else:
                await asyncio.gather(ingester.run(stop),
                                     *([poller.run(stop)] if poller is not None else []))
        finally:
            await publisher.stop()

    asyncio.run(_run_until_signal(main))
