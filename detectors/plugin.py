"""The plug-in interface every detector (env, video, satellite) registers through.

A detector kind is a pydantic config with a literal ``type`` (``env``, ``video``,
``satellite``) and a factory that builds the detector of one subject (station, camera,
tile), so one list of configs in YAML/JSON validates as a discriminated union
(``parse_config``) and ``create`` builds the right detector without the caller knowing the
kinds. The built-in kinds register when their modules are imported; ``registered``,
``config_adapter`` and ``create`` import them first, so the registry is always complete.

Every detector takes its modality's contract record and returns clue states:

* env, ``detectors.env.StationMonitor``: ``observe(Reading)``; state is JSON data;
* video, ``detectors.video_plugin.CameraDetector`` (a ``CameraAnalyzer``): ``observe(Frame)``
  (a JPEG frame; ``process`` takes decoded pixels, as the offline CLI does); its state
  (background model, tamper reference, tracks) is pixels, rebuilt from the next frames
  after a restart, so ``to_state()`` is ``None``;
* satellite, ``detectors.satellite_tile.TileMonitor``: ``observe(Tile)``; state is the
  multi-look confirmation's JSON data;
* fire, ``detectors.fire_monitor.FireMonitor``: ``observe(FireBatch)`` of one region cell;
  state is the cell's recent detections (persistent-heat mask, events across deliveries).

JSON state lets a Faust table keyed by subject hold it; ``create(config, subject, state)``
restores from it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Annotated, Any, Protocol, Union, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from contract.clue import Clue

#: the built-in kinds and the modules that register them (imported on first use)
BUILTIN = {"env": "detectors.env", "video": "detectors.video_plugin",
           "satellite": "detectors.satellite_tile", "fire": "detectors.fire_monitor",
           "power": "detectors.power"}


class DetectorConfig(BaseModel):
    """Base of every detector config; subclasses narrow ``type`` to a ``Literal``."""

    model_config = ConfigDict(extra="forbid")

    type: str


@runtime_checkable
class Detector(Protocol):
    """What a caller needs from a per-subject detector."""

    def observe(self, record: Any) -> list[Clue]: ...

    def flush(self) -> list[Clue]: ...

    def to_state(self) -> dict[str, Any] | None: ...


Factory = Callable[[Any, str, dict[str, Any] | None], Detector]
"""``factory(config, subject, state_or_None)`` builds a fresh or restored detector."""

_REGISTRY: dict[str, tuple[type[DetectorConfig], Factory]] = {}


def register(config_cls: type[DetectorConfig], factory: Factory) -> None:
    """Register a detector kind; its name is the default of the config's ``type`` field."""
    name = config_cls.model_fields["type"].default
    if not isinstance(name, str) or not name:
        raise ValueError(f"{config_cls.__name__}.type needs a literal default")
    _REGISTRY[name] = (config_cls, factory)


def _load_builtin(*kinds: str) -> None:
    """Import the modules of ``kinds`` (all built-in kinds when none is named)."""
    for kind in kinds or tuple(BUILTIN):
        if kind not in _REGISTRY and kind in BUILTIN:
            importlib.import_module(BUILTIN[kind])


def registered() -> dict[str, type[DetectorConfig]]:
    _load_builtin()
    return {name: cls for name, (cls, _) in _REGISTRY.items()}


def config_adapter() -> TypeAdapter[Any]:
    """A validator for any registered config, discriminated on ``type``."""
    classes = tuple(registered().values())
    if len(classes) == 1:
        return TypeAdapter(classes[0])
    return TypeAdapter(Annotated[Union[classes], Field(discriminator="type")])  # noqa: UP007


def parse_config(data: dict[str, Any]) -> DetectorConfig:
    return config_adapter().validate_python(data)


def create(config: DetectorConfig, subject: str, state: dict[str, Any] | None = None) -> Detector:
    """A detector for one subject, restored from ``state`` when given."""
    _load_builtin(config.type)
    try:
        _, factory = _REGISTRY[config.type]
    except KeyError:
        raise LookupError(f"no detector registered for type {config.type!r}") from None
    return factory(config, subject, state)
