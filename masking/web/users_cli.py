"""``flask --app app users ...``: dashboard users from the command line.

Passwords are read from standard input (one line, when it is not a terminal) or from a
hidden prompt asked twice; never from an argument, where they would end up in the shell
history and the process list. Errors end with one line and exit status 1, no traceback.
"""
from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from masking import audit, users
from masking.models import User
from masking.web.extensions import db, now

users_cli = AppGroup("users", help="Manage dashboard users (agents, supervisors, admins).")


def _read_password(confirm: bool = True) -> str:
    stream = sys.stdin
    if not stream.isatty():
        line = stream.readline()
        if not line:
            raise click.ClickException("no password on standard input")
        return line.rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=confirm)


def _user(username: str) -> User:
    user = users.find(db.session(), username)
    if user is None:
        raise click.ClickException(f"no user named {users.normalise_username(username)!r}")
    return user


@users_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(users.ROLES), required=True, help="What the user may do.")
def create(username, role):
    """Create USERNAME with ROLE. The password is read from stdin or a hidden prompt."""
    try:
        users.check_username(username)
        if users.find(db.session(), username) is not None:
            raise users.UserError(f"a user named {users.normalise_username(username)!r} already exists")
        password = _read_password()
        user = users.create_user(db.session(), username, password, role, now())
    except users.UserError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    audit.record(db.session(), None, "user.create", now(), target=user.username, detail=f"role {role}")
    db.session.commit()
    click.echo(f"created {user.role} {user.username!r}; log in at the dashboard's /login")


@users_cli.command("list")
def list_users():
    """List users with their role and state."""
    rows = db.session.scalars(select(User).order_by(User.username)).all()
    for user in rows:
        state = "disabled" if user.disabled_at else "active"
        click.echo(f"{user.username:<32} {user.role:<10} {state}")
    click.echo(f"{len(rows)} users")


@users_cli.command("set-password")
@click.argument("username")
def set_password(username):
    """Give USERNAME a new password (stdin or prompt); their open sessions end."""
    user = _user(username)
    try:
        users.set_password(db.session(), user, _read_password())
    except users.UserError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    audit.record(db.session(), None, "user.set_password", now(), target=user.username)
    db.session.commit()
    click.echo(f"new password set for {user.username!r}")


@users_cli.command("disable")
@click.argument("username")
def disable(username):
    """Disable USERNAME: no more logins, open sessions end."""
    user = _user(username)
    users.disable(db.session(), user, now())
    audit.record(db.session(), None, "user.disable", now(), target=user.username)
    db.session.commit()
    click.echo(f"{user.username!r} is disabled")


@users_cli.command("enable")
@click.argument("username")
def enable(username):
    """Allow a disabled USERNAME to log in again."""
    user = _user(username)
    users.enable(db.session(), user)
    audit.record(db.session(), None, "user.enable", now(), target=user.username)
    db.session.commit()
    click.echo(f"{user.username!r} is enabled")


def register(app: Flask) -> None:
    app.cli.add_command(users_cli)

