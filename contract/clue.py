"""The one clue model, shared by every detector, the streams, storage and the API.

It lives in the contract, below every layer, so pure detectors build clues without
importing Kafka or database code; ``contract.records`` lists it with the other records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Modality = Literal["env", "video", "satellite", "power"]
ClueState = Literal["open", "update", "closed"]


class EvidenceRef(BaseModel):
    """Evidence a detector produced with the clue; the evidence store fixes and signs it."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    media_type: str
    name: str
    content: bytes = b""
    sha256: str | None = None
    pending: dict[str, Any] | None = Field(
        default=None, description="what is still to be drawn (an env plot's data, captured "
        "with the clue): the clue is sent at once with this, and again with ``content`` once "
        "``streams.evidence`` has drawn it")


class Clue(BaseModel):
    """A violation clue: one per episode of a condition (station/camera/tile, rule).

    ``clue_id`` is the natural key of the episode (subject, rule, start), so a clue re-sent
    after a crash updates the same row instead of making a second one.
    """

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    modality: Modality
    kind: str = Field(description="what was found, e.g. exceedance, flatline, occlusion")
    rule: str = Field(description="the rule instance, e.g. 'GB3095-2012/II/a34004/24h'")
    subject: str = Field(description="station, camera or tile id")
    state: ClueState = "open"
    start: AwareDatetime
    time: AwareDatetime = Field(description="time of the latest observation in the episode")
    end: AwareDatetime | None = None
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    location: dict[str, Any] | None = Field(default=None, description="GeoJSON geometry, WGS84")
    metrics: dict[str, Any] = Field(default_factory=dict)
    summary: str = ""
    detector: str = ""
    detector_version: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    evidence: list[EvidenceRef] = Field(default_factory=list)
    route: dict[str, Any] | None = Field(
        default=None, description="where geo routed the clue (site, jurisdiction, department, "
        "zones, assignments); set once by the clue exit, read by every consumer")

    @property
    def site(self) -> str | None:
        """The routed site key (the ``clues`` topic key); None before the clue exit."""
        return self.route["site"] if self.route else None

    @property
    def clue_id(self) -> str:
        return f"{self.modality}:{self.subject}:{self.rule}:{_stamp(self.start)}"


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S%z")
