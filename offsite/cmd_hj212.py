"""Subcommands: HJ 212 frames: parse and build."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="HJ 212 frames: parse and build.")
