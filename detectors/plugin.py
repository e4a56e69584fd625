"""A tiny plug-in interface every detector (env, video, satellite) shares.

A detector is configured by a pydantic model with a literal ``type`` field, so one list of
configs in YAML/JSON validates as a discriminated union without the stream layer knowing the
detector kinds. Detectors are stateful per subject (station, camera, tile) and keep their
state as plain JSON data, so a Faust table keyed by subject can hold it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Protocol, Union, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from contract.clue import Clue


class DetectorConfig(BaseModel):
    """Base of every detector config; subclasses narrow ``type`` to a ``Literal``."""

    model_config = ConfigDict(extra="forbid")

    type: str
    enabled: bool = True


@runtime_checkable
class Detector(Protocol):
    """What the stream layer needs from a per-subject detector."""

    def observe(self, record: Any) -> list[Clue]: ...

    def to_state(self) -> dict[str, Any]: ...


Factory = Callable[[DetectorConfig, str, dict[str, Any] | None], Detector]
"""``factory(config, subject, state_or_None)`` builds a fresh or restored detector."""

_REGISTRY: dict[str, tuple[type[DetectorConfig], Factory]] = {}


def register(config_cls: type[DetectorConfig], factory: Factory) -> None:
    """Register a detector kind; its name is the default of the config's ``type`` field."""
    name = config_cls.model_fields["type"].default
    if not isinstance(name, str) or not name:
        raise ValueError(f"{config_cls.__name__}.type needs a literal default")
    _REGISTRY[name] = (config_cls, factory)


def registered() -> dict[str, type[DetectorConfig]]:
    return {name: cls for name, (cls, _) in _REGISTRY.items()}


def config_adapter() -> TypeAdapter[Any]:
    """A validator for any registered config, discriminated on ``type``."""
    classes = tuple(cls for cls, _ in _REGISTRY.values())
    if not classes:
        raise LookupError("no detector registered")
    if len(classes) == 1:
        return TypeAdapter(classes[0])
    return TypeAdapter(Annotated[Union[classes], Field(discriminator="type")])  # noqa: UP007


def parse_config(data: dict[str, Any]) -> DetectorConfig:
    return config_adapter().validate_python(data)


def create(config: DetectorConfig, subject: str, state: dict[str, Any] | None = None) -> Detector:
    """A detector for one subject, restored from ``state`` when given."""
    try:
        _, factory = _REGISTRY[config.type]
    except KeyError:
        raise LookupError(f"no detector registered for type {config.type!r}") from None
    return factory(config, subject, state)
