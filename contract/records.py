"""Every topic's record type, in one place.

Records are pydantic models serialised as JSON on the wire. Agents receive raw bytes and
decode them here, so a record that does not validate becomes a dead letter with its bytes
and the reason instead of crashing the agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from contract.clue import Clue, EvidenceRef

__all__ = ["CameraHealth", "Clue", "EnvReadings", "Evidence", "EvidenceRef", "FireBatch",
           "FireDetection", "Frame", "HourSeries", "HourSummary", "PowerSamples", "Reading",
           "ReadingBatch", "Record", "Rejected", "Scene", "Tile", "env_records", "readings_of"]

Period = Literal["rtd", "minute", "hour", "day"]


class Record(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64", extra="forbid")

    def dumps(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def loads(cls, raw: bytes) -> Self:
        return cls.model_validate_json(raw)


class Reading(Record):
    """Values of one station at one instant (one HJ 212 data frame or one JSON reading)."""

    station: str = Field(min_length=1, max_length=64)
    time: AwareDatetime
    period: Period = "rtd"
    values: dict[str, float]
    flags: dict[str, str] = Field(default_factory=dict)
    source: str = "mqtt"
    interval_s: int | None = Field(default=None, description="station's own reporting interval")
    event: Literal["restart"] | None = Field(
        default=None, description="a station event instead of data: 'restart' is a logger "
        "restart (HJ 212 CN 2081) at ``time``; ``values`` is then empty")


READINGS_PER_RECORD = 100  # the most readings a producer puts into one ReadingBatch


class ReadingBatch(Record):
    """Readings of one station in one Kafka record (what one MQTT JSON array carries).

    Per-record costs -- Kafka framing, Faust's dispatch and ack of each event, a JSON decode
    per consumer -- are then paid once per batch, not once per reading. HJ 212 frames stay
    one ``Reading`` per record; every consumer of ``env.readings`` reads both through
    ``EnvReadings``. The key stays the station, so a station's readings keep their order.
    """

    station: str = Field(min_length=1, max_length=64)
    readings: list[Reading] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_station(self) -> Self:
        other = next((r.station for r in self.readings if r.station != self.station), None)
        if other is not None:
            raise ValueError(f"reading of station {other!r} in a batch of {self.station!r}")
        return self


class HourSeries(Record):
    """One station's hour means of one code: parallel lists, so a day of hours is one
    object to validate, not 24."""

    station: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=32)
    hours: list[int] = Field(min_length=1, description="hour starts, epoch seconds")
    means: list[float] = Field(min_length=1, description="mean of the valid values")

    @model_validator(mode="after")
    def _parallel(self) -> Self:
        if len(self.hours) != len(self.means):
            raise ValueError(f"{len(self.hours)} hours but {len(self.means)} means")
        return self


class HourSummary(Record):
    """Hour means of one env batch for one region ``cell``, on their way to the neighbour
    rules.

    Neighbours' readings live on other ``env.readings`` partitions, so the env agent sends
    the means to ``env.hours`` keyed by region cell: to each station's own cell and to the
    cells of the stations that count it as a neighbour (see ``streams.env_region``). One
    record per cell and batch, not per hour: a backfill of years of hourly data is a few
    records, not millions. A mean sent again (a redelivery) overwrites itself there.
    """

    cell: str = Field(description="the region cell this copy is for")
    series: list[HourSeries] = Field(min_length=1)


class EnvReadings:
    """The record type of ``env.readings``: a ``ReadingBatch`` or one ``Reading``.

    ``model_validate_json`` (the name every topic's record type answers to) validates as the
    likelier type first -- a ``"readings"`` key means a batch -- and as the other one only if
    that fails: a plain pydantic union tries both and doubled the cost of decoding a batch.
    """

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray) -> Reading | ReadingBatch:
        raw = json_data.encode() if isinstance(json_data, str) else bytes(json_data)
        order = (ReadingBatch, Reading) if b'"readings"' in raw else (Reading, ReadingBatch)
        try:
            return order[0].model_validate_json(raw)
        except ValidationError as first:
            try:
                return order[1].model_validate_json(raw)
            except ValidationError:
                raise first from None


def env_records(readings: Sequence[Reading]) -> list[Reading | ReadingBatch]:
    """The records a producer sends for one station's readings, in order: one reading as
    itself, more as batches of at most ``READINGS_PER_RECORD`` (bounded record size)."""
    if len(readings) == 1:
        return [readings[0]]
    return [ReadingBatch(station=readings[i].station,
                         readings=list(readings[i:i + READINGS_PER_RECORD]))
            for i in range(0, len(readings), READINGS_PER_RECORD)]


def readings_of(record: Reading | ReadingBatch) -> list[Reading]:
    """The readings of an ``env.readings`` record, whichever form it has."""
    return record.readings if isinstance(record, ReadingBatch) else [record]


class PowerSamples(Record):
    """Meter readings of one entity's channels (kW), re-keyed from ``env.readings`` by
    entity so that the production and the treatment meters of an entity meet in one place
    (they report as stations of their own and land on any partition)."""

    entity: str = Field(min_length=1)
    readings: list[Reading] = Field(min_length=1)


class Frame(Record):
    """One sampled, downscaled, JPEG-encoded video frame."""

    camera: str
    time: AwareDatetime
    seq: int
    width: int
    height: int
    jpeg: bytes


class CameraHealth(Record):
    """What an RTSP ingester saw of one camera at ``time`` (its wall clock, UTC).

    Sent at every online/offline transition and as a heartbeat while nothing changes, also
    while the camera sends nothing: the heartbeat is what carries time forward for the
    signal-loss detector, which reads no clock of its own.
    """

    camera: str = Field(min_length=1, max_length=128)
    time: AwareDatetime
    online: bool
    fps: float | None = None
    last_frame: AwareDatetime | None = Field(
        default=None, description="time of the newest frame grabbed, None if none yet")
    detail: str = ""
    transition: bool = Field(default=False, description="online changed with this record")
    signal_loss_s: float | None = Field(
        default=None, gt=0, description="the ingester's signal-loss threshold for this camera "
        "(`offsite ingest rtsp --signal-loss-s`); None: the detector's default")


class Scene(Record):
    """A satellite acquisition available to the tiler."""

    scene_id: str
    sensor: str
    time: AwareDatetime
    crs: str
    footprint: dict[str, Any]
    uri: str
    bands: dict[str, int] = Field(default_factory=dict)
    qa_band: int | None = None
    width: int
    height: int


class Tile(Record):
    """A block-aligned window of a scene with the baseline scene it is compared against."""

    tile_id: str
    scene_id: str
    time: AwareDatetime
    uri: str
    window: tuple[int, int, int, int]
    bands: dict[str, int] = Field(default_factory=dict)
    qa_band: int | None = None
    baseline_scene_id: str | None = None
    baseline_uri: str | None = None
    baseline_time: datetime | None = None


class FireDetection(BaseModel):
    """One active-fire detection (a FIRMS CSV row, MODIS or VIIRS), in common units.

    ``confidence`` is the sensor's own confidence on 0-1 (MODIS 0-100 divided by 100; VIIRS
    low/nominal/high as 0.3/0.65/0.9); ``confidence_raw`` keeps what the file said. ``scan``
    and ``track`` are the pixel's footprint in km (about 1 at MODIS nadir, up to 2 x 4.8 at
    the swath edge; 0.375 for VIIRS I-band), which sets how close two detections must be to
    be one fire.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lon: float = Field(ge=-180.0, le=180.0)
    lat: float = Field(ge=-90.0, le=90.0)
    time: AwareDatetime
    satellite: str = Field(max_length=32)
    instrument: Literal["MODIS", "VIIRS"]
    confidence: float = Field(ge=0.0, le=1.0)
    confidence_raw: str = Field(max_length=16)
    frp: float = Field(ge=0.0, le=1e6, description="fire radiative power, MW")
    scan: float = Field(gt=0.0, le=50.0)
    track: float = Field(gt=0.0, le=50.0)
    brightness: float | None = None
    daynight: str = Field(default="", max_length=1)


class FireBatch(Record):
    """Detections of one region cell from one FIRMS file or poll (``sat.fires``).

    Keyed by the region cell (a coarse geohash) so the persistent-heat history of a place
    lives on one worker; ``sha256`` is the source file's, carried into the evidence.
    ``observed_until``: the newest acquisition time of the whole file or poll answer, the
    data's own clock: an event of this cell whose last detection is more than a grouping
    window before it has ended (``detectors.fire_monitor``). A batch without detections
    carries only that: the satellites' data over this cell reached that time.
    """

    source: str = Field(max_length=512)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    cell: str = Field(min_length=1, max_length=16)
    detections: list[FireDetection] = Field(default_factory=list)
    observed_until: AwareDatetime | None = None

    @model_validator(mode="after")
    def _detections_or_time(self) -> Self:
        if not self.detections and self.observed_until is None:
            raise ValueError("a fire batch needs detections or observed_until")
        return self


class Evidence(Record):
    """A piece of evidence to be fixed (hashed, chained, signed) by the evidence store."""

    clue_id: str
    source: str
    time: AwareDatetime
    item: EvidenceRef
    detector: str = ""
    detector_version: str = ""
    params: dict[str, Any] = Field(default_factory=dict)


class Rejected(Record):
    """Input that could not be used, kept with its raw bytes so nothing is lost."""

    time: AwareDatetime
    source: str
    reason: str
    raw: bytes
    context: dict[str, Any] = Field(default_factory=dict)
