"""Imports every agent module so that one worker runs them all."""

from streams import (
    clues,  # noqa: F401
    env,  # noqa: F401
    satellite,  # noqa: F401
    sinks,  # noqa: F401
    video,  # noqa: F401
)
