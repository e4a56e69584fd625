"""Offsite: off-site regulatory monitoring (非现场监管) on streams."""

__version__ = "0.1.0"
