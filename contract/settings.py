"""The one settings object.

Every process reads the same settings from the environment (prefix ``OFFSITE_``) and an
optional ``.env``. A URL left unset means "start the embedded local service", which is how
``offsite up``, ``make demo`` and the tests run without anything installed by hand.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OFFSITE_", env_file=".env", extra="ignore")

    broker_url: str | None = Field(
        default=None, description="Kafka bootstrap, e.g. kafka://host:9092; unset: embedded Tansu"
    )
    database_url: str | None = Field(
        default=None, description="PostgreSQL/TimescaleDB URL; unset: embedded cluster"
    )
    mqtt_url: str | None = Field(
        default=None, description="MQTT broker, e.g. mqtt://host:1883; unset: embedded Mosquitto"
    )
    state_dir: Path = Field(default=Path(".state"), description="embedded services, keys, media")
    partitions: int = Field(default=4, ge=1, description="partitions of every keyed topic")
    log_level: str = "INFO"
    rebalance_timeout_s: float = Field(default=120.0, gt=0, description="consumer group rebalance")
    app_id: str = "offsite"
    local_utc_offset_hours: float = Field(
        default=8.0, description="offset of station-local time (HJ 212 DataTime is UTC+8)"
    )
    sink_batch_size: int = Field(default=500, ge=1)
    sink_batch_seconds: float = Field(default=0.5, gt=0)
    clue_batch_seconds: float = Field(
        default=0.05, gt=0, description="batch wait of the agents on a clue's path (env "
        "detector, clues sink, fusion): an idle stream hands a record on after at most this; "
        "under load batches still fill to sink_batch_size")
    consumer_fetch_wait_s: float = Field(
        default=0.05, gt=0, le=1.5, description="longest wait of a worker's Kafka fetch at "
        "the broker (Faust's own: 1.5 s, which Tansu holds in full: streams/faust_fetch.py)")
    plot_processes: int = Field(
        default=1, ge=0, description="child processes drawing env evidence PNGs; 0: in the worker"
    )
    sat_confirm_looks: int = Field(default=2, ge=1, description="looks that confirm a change")
    sat_window_looks: int = Field(default=4, ge=1, description="looks a low alert waits for")
    sat_expire_days: float = Field(default=90.0, gt=0, description="a pending alert expires")
    sat_threads: int = Field(default=2, ge=1, description="threads reading satellite windows")
    mqtt_client_id: str = "offsite-ingest-mqtt"
    api_host: str = "127.0.0.1"
    api_port: int = 8600
    hj212_port: int = Field(default=9212, description="HJ 212 TCP server port for `offsite up`")
    evidence_media: Literal["database", "folder"] = Field(
        default="database", description="where evidence bytes live: bytea rows or a folder"
    )
    evidence_dir: Path | None = Field(
        default=None, description="content-addressed evidence folder; unset: <state_dir>/evidence"
    )
    registry_default_owner: str = Field(
        default="provincial-monitoring-center",
        description="owner department of registered resources that name none",
    )
    map_tile_url: str | None = Field(
        default=None,
        description="base map tiles for the pages, a Leaflet URL template such as"
        " https://tiles.example.gov.cn/{z}/{x}/{y}.png (a province's own server or a Tianditu"
        " mirror); unset: the map draws the registry's jurisdictions and zones as its base",
    )
    map_tile_attribution: str = Field(default="", description="credit shown under the tiles")

    evidence_trusted_keys: list[str] = Field(
        default_factory=list,
        description="public keys (raw hex or PEM; JSON list in the environment) that "
                    "`offsite evidence verify` trusts besides the state folder's own key",
    )

    # ---- input rules (contract.input_rules): limits below every downstream limit ----------
    mqtt_username: str | None = Field(
        default=None, description="MQTT user; unset: taken from mqtt_url, or the password file "
        "that `offsite up` writes into the state folder")
    mqtt_password: str | None = Field(default=None, description="MQTT password (see above)")
    max_mqtt_payload: int = Field(
        default=1024 * 1024, ge=1024, description="largest MQTT message read; larger ones go "
        "to the dead-letter store (first rejected_raw_max bytes) and are acknowledged")
    max_record_bytes: int = Field(
        default=512 * 1024, ge=4096, le=900 * 1024, description="largest Kafka record any "
        "producer sends: below the producer's max_request_size (8 MiB) and Faust's 1 MB")
    rejected_raw_max: int = Field(
        default=256 * 1024, ge=1024, le=512 * 1024, description="bytes of a rejected input "
        "kept whole in its dead letter (base64 in the record stays under max_record_bytes)")
    max_text_chars: int = Field(default=256, ge=8, description="longest code, id or flag")
    max_abs_value: float = Field(default=1e12, gt=0, description="largest |measured value|")
    time_window_past_days: float = Field(
        default=366.0, gt=0, description="live ingest and the API refuse older times (the "
        "demo's replay of old records widens it); offline tools only check 1970..2100")
    time_window_future_s: float = Field(
        default=3600.0, ge=0, description="live ingest refuses times further ahead of now")
    retry_max_attempts: int = Field(
        default=8, ge=1, description="tries of one input on an error that is neither a known "
        "outage nor a known bad input, before it goes to the dead-letter store")
    satellite_max_pixels: int = Field(
        default=20000 * 20000, ge=1, description="largest scene (width x height) the satellite "
        "ingester accepts; the confirmation state's size budget is proven against it")
    satellite_allowed_prefixes: tuple[str, ...] = Field(
        default=(), description="GDAL paths outside the inbox that scenes may name (e.g. "
        "'/vsis3/bucket/'); empty: only files inside the inbox")

    @property
    def evidence_folder(self) -> Path:
        return self.evidence_dir or self.state_dir / "evidence"

    @property
    def kafka_bootstrap(self) -> str:
        """Bootstrap servers as aiokafka wants them (``host:port``, no scheme)."""
        if not self.broker_url:
            raise RuntimeError("broker_url is not set; start embedded services first")
        return self.broker_url.split("://", 1)[-1]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


@contextlib.contextmanager
def overridden(**values: str) -> Iterator[Settings]:
    """This process's settings with ``values`` (field name -> text, as the environment would
    give it) until the block ends, then the previous ones again.

    For a server run inside this process (``offsite.services.serve_api`` in tests): the
    values go to the environment as ``OFFSITE_<FIELD>``, so code calling ``get_settings()``
    and children started meanwhile see them. Reading the old values back is reading
    ``OFFSITE_`` variables, which is this module's job alone, hence it lives here.
    """
    unknown = set(values) - set(Settings.model_fields)
    if unknown:
        raise ValueError(f"not settings fields: {sorted(unknown)}")
    prefix = Settings.model_config.get("env_prefix", "")
    names = {f"{prefix}{field.upper()}": value for field, value in values.items()}
    old = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    get_settings.cache_clear()
    try:
        yield get_settings()
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
