"""Topic names and their keys, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from contract.records import (
    CameraHealth,
    Clue,
    EnvReadings,
    Evidence,
    FireBatch,
    Frame,
    HourSummary,
    PowerSamples,
    Rejected,
    Scene,
    Tile,
)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    record: type
    key: str
    keyed: bool = True


ENV_READINGS = TopicSpec("env.readings", EnvReadings, key="station")  # Reading | ReadingBatch
#: env hour summaries for the neighbour rules, each sent to its own and the adjacent cells
ENV_HOURS = TopicSpec("env.hours", HourSummary, key="region cell")
VIDEO_FRAMES = TopicSpec("video.frames", Frame, key="camera")
CAMERA_HEALTH = TopicSpec("camera.health", CameraHealth, key="camera")
SAT_SCENES = TopicSpec("sat.scenes", Scene, key="scene")
SAT_TILES = TopicSpec("sat.tiles", Tile, key="tile")
SAT_FIRES = TopicSpec("sat.fires", FireBatch, key="region cell (geohash of 3 characters)")
CLUES = TopicSpec("clues", Clue, key="site (zone id, else geohash cell)")
EVIDENCE = TopicSpec("evidence", Evidence, key="clue")
INGEST_REJECTED = TopicSpec("ingest.rejected", Rejected, key="source")
POWER_SAMPLES = TopicSpec("power.samples", PowerSamples, key="entity")

ALL_TOPICS: tuple[TopicSpec, ...] = (
    ENV_READINGS, ENV_HOURS, VIDEO_FRAMES, CAMERA_HEALTH, SAT_SCENES, SAT_TILES, SAT_FIRES,
    CLUES, EVIDENCE, INGEST_REJECTED, POWER_SAMPLES,
)
