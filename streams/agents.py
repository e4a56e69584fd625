"""Imports every agent module so that one worker runs them all."""

from streams import sinks  # noqa: F401
