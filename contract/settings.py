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
from typing import Annotated, Literal
from urllib.parse import urlsplit

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
    power_grace_s: float = Field(default=300.0, ge=0, description="production start-up grace"
                                 " before treatment must run")
    power_min_episode_s: float = Field(default=600.0, ge=0, description="a power condition"
                                       " must last this long to become a clue")
    power_stale_s: float = Field(default=1800.0, gt=0, description="a channel's last value"
                                 " counts for this long")
    power_offline_s: float = Field(default=3600.0, gt=0, description="a meter silent this"
                                   " long is offline")
    power_idle_ratio: float = Field(default=0.5, gt=0, lt=1, description="treatment below"
                                    " this share of its usual load is idling")
    fire_harvest_months: tuple[Annotated[int, Field(ge=1, le=12)], ...] = Field(
        default=(5, 6, 9, 10), description="months (1-12) in which a fire on protected "
        "farmland is straw burning (wheat harvest May-June, maize September-October)")
    fire_dedupe_minutes: float = Field(
        default=60.0, gt=0, description="two fire detections whose pixels overlap within this "
        "time are one observation (the same overpass, or Aqua and S-NPP minutes apart)")
    fire_group_km: float = Field(
        default=2.0, gt=0, description="detections closer than this (or than their pixels' "
        "reach, if larger) and within fire_group_hours are one fire event")
    fire_group_hours: float = Field(
        default=12.0, gt=0, description="the longest gap between overpasses that still "
        "continues a fire event")
    fire_persistent_km: float = Field(
        default=1.0, gt=0, description="radius of a place for the persistent-heat mask")
    fire_persistent_days: int = Field(
        default=4, ge=2, description="days with detections at one place (within "
        "fire_persistent_window_days) that make it a persistent heat source, masked")
    fire_persistent_window_days: float = Field(
        default=30.0, gt=0, description="history kept for the persistent-heat mask")
    fire_fusion_km: float = Field(
        default=3.0, ge=0, description="a fire event within this distance of a registered "
        "camera or station takes that sensor's site, so smoke or motion on the camera or a "
        "PM2.5 rise at the station fuses with it into one case; 0: the event's own site")
    firms_poll_url: str | None = Field(
        default=None, description="a FIRMS-style area URL (CSV) that `offsite ingest "
        "satellite` polls; unset: no polling, only the inbox")
    firms_poll_s: float = Field(default=3600.0, ge=1.0, description="FIRMS polling interval")
    mqtt_client_id: str = "offsite-ingest-mqtt"
    api_host: str = "127.0.0.1"
    api_port: int = 8600
    worker_metrics_port: int = Field(
        default=0, ge=0, le=65535, description="`offsite worker` serves Prometheus /metrics "
        "(video frames analysed, dropped, lag; clues published) on this port; 0: not served")
    worker_metrics_host: str = "127.0.0.1"
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
    # Random inspection draws (issue 17; oversight/draws.py). Yearly inspection rate per
    # environmental credit class: the "double random" guidance samples ordinary sources at
    # no less than 5 % a year and key sources at 20 %, and scales frequency with credit, up to
    # every year for the worst grade; unrated entities count as B. A province sets its own.
    draw_rates: dict[str, float] = Field(
        default={"A": 0.05, "B": 0.20, "C": 0.50, "D": 1.00},
        description="yearly random-inspection rate per credit class A-D (JSON object)")
    draw_risk_multipliers: dict[str, float] = Field(
        default={"low": 1.0, "medium": 1.5, "high": 2.0},
        description="factor on the class rate per risk level (entity_risk.level)")
    draw_yearly_cap: int = Field(
        default=4, ge=1, description="most random draws of one entity per calendar year, all "
        "departments together (the rule forbids inspecting the same enterprise over and over)")
    draw_high_risk_share: float = Field(
        default=0.5, ge=0, le=1, description="share of a department's high-risk entities "
        "(highest scores first) that every draw includes for sure")

    # ---- risk per regulated entity (oversight/risk.py; README "Risk per regulated entity") --
    risk_kind_weights: dict[str, float] = Field(
        default_factory=dict, description="points per clue by kind (JSON object), over the "
        "built-in table oversight.risk.KIND_WEIGHTS; key '*' for kinds not listed")
    risk_half_life_days: float = Field(default=30.0, gt=0, description="a clue's weight "
                                       "halves every this many days after its latest time")
    risk_confirmed_factor: float = Field(default=2.0, ge=1.0, description="x for a clue the "
                                         "inspector confirmed (unreviewed: 1, false positive: 0)")
    risk_not_found_factor: float = Field(default=0.5, ge=0.0, le=1.0,
                                         description="x for a clue reported not_found")
    risk_open_weight: float = Field(default=1.0, ge=0.0, description="points of a clue "
                                    "while it is not closed (not decayed)")
    risk_gap_kinds: tuple[str, ...] = Field(default=("offline", "signal_loss", "meter_offline"),
                                            description="clue kinds that are monitoring gaps")
    risk_gap_per_day: float = Field(default=0.5, ge=0.0, description="points per day a "
                                    "gap lasted (decayed like its clue)")
    risk_gap_max_days: float = Field(default=30.0, gt=0, description="longest gap counted")
    risk_medium_at: float = Field(default=5.0, ge=0.0, description="score of level medium")
    risk_high_at: float = Field(default=15.0, ge=0.0, description="score of level high")
    risk_top_n: int = Field(default=5, ge=1, le=100, description="contributions kept")
    risk_refresh_s: float = Field(default=3600.0, ge=0.0, description="every entity is "
                                  "recomputed this often (decay, registry changes); 0: never")
    risk_history_step: float = Field(default=0.5, ge=0.0, description="a history row is kept "
                                     "when the score moved this much or the level changed")

    @property
    def evidence_folder(self) -> Path:
        return self.evidence_dir or self.state_dir / "evidence"

    @property
    def kafka_bootstrap(self) -> str:
        """Bootstrap servers as aiokafka wants them (``host:port``, no scheme)."""
        if not self.broker_url:
            raise RuntimeError("broker_url is not set; start embedded services first")
        return self.broker_url.split("://", 1)[-1]

    @property
    def mqtt_auth(self) -> tuple[str | None, str | None]:
        """MQTT user and password: ``mqtt_username`` / ``mqtt_password``, else those of
        ``mqtt_url`` (a password with ``@`` or ``:`` in it is easier in the former)."""
        url = urlsplit(self.mqtt_url or "")
        return self.mqtt_username or url.username, self.mqtt_password or url.password


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
