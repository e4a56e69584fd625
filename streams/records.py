"""Every topic's record type, in one place.

Records are pydantic models serialised as JSON on the wire. Agents receive raw bytes and
decode them here, so a record that does not validate becomes a dead letter with its bytes
and the reason instead of crashing the agent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from detectors.clue import Clue, EvidenceRef

__all__ = ["Clue", "Evidence", "EvidenceRef", "Frame", "Reading", "Record", "Rejected", "Scene",
           "Tile"]

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


class Frame(Record):
    """One sampled, downscaled, JPEG-encoded video frame."""

    camera: str
    time: AwareDatetime
    seq: int
    width: int
    height: int
    jpeg: bytes


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
