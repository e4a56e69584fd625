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
