"""The one command-line entry point, ``offsite``.

Each group of subcommands lives in its own ``offsite/cmd_*.py`` module; this file only
assembles them.
"""

from __future__ import annotations

import typer

from offsite import (
    cmd_bench,
    cmd_case,
    cmd_env,
    cmd_evidence,
    cmd_hj212,
    cmd_inspections,
    cmd_power,
    cmd_registry,
    cmd_report,
    cmd_risk,
    cmd_run,
    cmd_satellite,
    cmd_users,
    cmd_video,
)

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Offsite: off-site regulatory monitoring on streams.")
app.command()(cmd_run.worker)
app.command()(cmd_run.up)
app.command()(cmd_run.demo)
app.command()(cmd_run.api)
app.add_typer(cmd_run.ingest_app, name="ingest")
app.add_typer(cmd_run.db_app, name="db")
app.add_typer(cmd_run.replay_app, name="replay")
app.add_typer(cmd_hj212.app, name="hj212")
app.add_typer(cmd_env.app, name="env")
app.add_typer(cmd_power.app, name="power")
app.add_typer(cmd_video.app, name="video")
app.add_typer(cmd_satellite.app, name="satellite")
app.add_typer(cmd_evidence.app, name="evidence")
app.add_typer(cmd_case.app, name="case")
app.add_typer(cmd_bench.app, name="bench")
app.add_typer(cmd_registry.app, name="registry")
app.add_typer(cmd_risk.app, name="risk")
app.add_typer(cmd_users.user_app, name="user")
app.add_typer(cmd_users.token_app, name="token")
app.add_typer(cmd_inspections.app, name="inspections")
app.add_typer(cmd_report.app, name="report")
