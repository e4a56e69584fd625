"""Configuration of the environmental detector: station registry entry and rule thresholds.

Thresholds are config, not constants, because regulators tune them per network; the
defaults are chosen so that four years of real Beijing data raise few quality clues while
planted faults are caught (see tests/detectors).
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from detectors.limits import standard_for
from detectors.plugin import DetectorConfig

DETECTOR = "offsite.env"
VERSION = "0.1.0"

O2 = "a19001"
PH = "w01001"
NOX, NO, NO2 = "a21002", "a21003", "a21004"

#: Codes that may legitimately be negative (temperatures, pressure differences).
SIGNED_CODES = frozenset({"a01001", "w01010", "a01007", "a01013", "a01014"})

#: Typical lowest readings of ambient analysers (µg/m³, CO mg/m³): runs at or under these are
#: the instrument's floor, not a stuck value.
DEFAULT_FLOORS: dict[str, float] = {
    "a21026": 3.0, "a21004": 2.0, "a34004": 3.0, "a34002": 5.0, "a21005": 0.3, "a05024": 2.0,
}


class StationInfo(BaseModel):
    """The parts of a station's registry entry the detector needs."""

    model_config = ConfigDict(extra="ignore")

    id: str
    st: str | None = "22"
    standard: str | None = None
    utc_offset_hours: float = 8.0
    interval_s: int | None = Field(default=None, description="declared reporting interval")
    adopted_from: date | None = Field(
        default=None, description="date the region applied the standard, if before national")

    @property
    def resolved_standard(self) -> str:
        return standard_for(self.st, self.standard)


class EnvConfig(DetectorConfig):
    """Plug-in config of the env detector (``type: env``)."""

    type: Literal["env"] = "env"
    evidence: bool = Field(default=True, description="attach PNG plots on open and close")
    update_every_s: float = Field(default=3600, description="data time between update events")
    offline_factor: float = 3.0
    flatline_min_run: int = 6
    flatline_min_s: float = 3 * 3600
    floors: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_FLOORS))
    spike_window: int = 48
    spike_z: float = 9.0
    hug_window: int = Field(default=10, description="daily windows looked at for hugging")
    hug_window_1h: int = Field(default=24, description="hourly windows looked at for hugging")
    hug_band: float = 0.9
    hug_share: float = 0.6
    flag_share: float = 0.25
    nox_rel_tol: float = 0.10
    zs_rel_tol: float = 0.05
    dilution_o2: float = 19.0
    replay_block: int = 3
    replay_window: int = 168
    replay_min_info: int = Field(
        default=12, description="distinct values (per channel, summed) a repeated block needs"
        " before it counts as a replay: enough that chance cannot repeat it")
    buffer: int = 192
