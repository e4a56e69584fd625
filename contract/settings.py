"""The one settings object.

Every process reads the same settings from the environment (prefix ``OFFSITE_``) and an
optional ``.env``. A URL left unset means "start the embedded local service", which is how
``offsite up``, ``make demo`` and the tests run without anything installed by hand.
"""

from __future__ import annotations

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
    plot_processes: int = Field(
        default=1, ge=0, description="child processes drawing env evidence PNGs; 0: in the worker"
    )
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
