"""Subcommands: API users (``offsite user``) and their bearer tokens (``offsite token``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer

user_app = typer.Typer(no_args_is_help=True, help="API users: each in one department, one role.")
token_app = typer.Typer(no_args_is_help=True, help="API bearer tokens (stored hashed).")


def _connect():  # type: ignore[no-untyped-def]
    import psycopg

    from contract.settings import get_settings

    url = get_settings().database_url
    if not url:
        raise typer.BadParameter("set OFFSITE_DATABASE_URL (or use `offsite up`)")
    return psycopg.connect(url)


@user_app.command("add")
def user_add(
    name: str = typer.Argument(..., help="user id"),
    department: str = typer.Option(..., "--department", "-d",
                                   help="department id (created if new)"),
    role: str = typer.Option("department_user", "--role", "-r",
                             help="center_operator, inspector, department_user or admin"),
) -> None:
    """Create a user (or move an existing one to this department and role)."""
    from storage.users import ROLES, add_user

    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}", param_hint="--role")
    with _connect() as conn:
        add_user(conn, name, department, role)
    typer.echo(f"user {name}: department {department}, role {role}")


@token_app.command("issue")
def token_issue(
    user: str = typer.Argument(..., help="user id"),
    days: float = typer.Option(None, help="expire after this many days (default: never)"),
) -> None:
    """Issue a bearer token; it is printed once and only its hash is stored."""
    from storage.users import issue_token

    expires = datetime.now(UTC) + timedelta(days=days) if days else None
    with _connect() as conn:
        try:
            token_id, token = issue_token(conn, user, expires)
        except LookupError as exc:
            raise typer.BadParameter(str(exc), param_hint="USER") from exc
    typer.echo(f"token id: {token_id}", err=True)
    typer.echo("token (shown once; only its hash is stored):", err=True)
    typer.echo(token)


@token_app.command("revoke")
def token_revoke(token_id: str = typer.Argument(..., help="token id (tok_...)")) -> None:
    """Revoke a token by its id."""
    from storage.users import revoke_token

    with _connect() as conn:
        if not revoke_token(conn, token_id):
            typer.echo(f"no live token {token_id}", err=True)
            raise typer.Exit(1)
    typer.echo(f"revoked {token_id}")
