"""``flask --app app users ...``: dashboard users from the command line.

Passwords are read from standard input (one line, when it is not a terminal) or from a
hidden prompt asked twice; never from an argument, where they would end up in the shell
history and the process list. Errors end with one line and exit status 1, no traceback.
Changes go through ``masking.administration``, as the dashboard's do: one write transaction
each, with its audit entry, and the same guard (the last active admin cannot be disabled).
Disabling a disabled user or enabling an enabled one changes nothing and exits 0.
"""
from __future__ import annotations

import contextlib
import sys

import click
from flask import Flask
from sqlalchemy.exc import IntegrityError

from masking import administration, users
from masking.db import write_transaction
from masking.humanize import count
from masking.models import User
from masking.web.cli import OperatorGroup
from masking.web.extensions import db, now

users_cli = OperatorGroup("users", help="Manage dashboard users (agents, supervisors, admins).")


def _read_password(confirm: bool = True) -> str:
    stream = sys.stdin
    if not stream.isatty():
        line = stream.readline()
        if not line:
            raise click.ClickException("no password on standard input")
        return line.rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=confirm)


def _locked(user: User) -> User:
    """``user`` read again, and locked, inside the write transaction (users are never deleted)."""
    return administration.lock_user(db.session(), user.id)


def _user(username: str) -> User:
    user = users.find(db.session(), username)
    if user is None:
        raise click.ClickException(f"no user named {users.normalise_username(username)!r}")
    return user


@contextlib.contextmanager
def _change():
    """``with _change(): ...``: one write transaction; a refusal ends the command with its reason."""
    try:
        with write_transaction(db.session()):
            yield
    except administration.AdminError as exc:
        raise click.ClickException(str(exc)) from None


@users_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(users.ROLES), required=True, help="What the user may do.")
def create(username, role):
    """Create USERNAME with ROLE. The password is read from stdin or a hidden prompt."""
    try:  # before asking for the password
        users.check_username(username)
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from None
    taken = click.ClickException(f"a user named {users.normalise_username(username)!r} already exists")
    if users.find(db.session(), username) is not None:
        raise taken
    password = _read_password()
    try:
        with _change():
            user = administration.create_user(db.session(), None, username, password, role, now())
    except IntegrityError:  # created by another connection since the check above (on PostgreSQL)
        raise taken from None
    click.echo(f"created {user.role} {user.username!r}; log in at the dashboard's /login")


@users_cli.command("list")
def list_users():
    """List users with their role and state."""
    rows = administration.list_users(db.session())
    for user in rows:
        state = "disabled" if user.disabled_at else "active"
        click.echo(f"{user.username:<32} {user.role:<10} {state}")
    click.echo(count(len(rows), "user"))


@users_cli.command("set-password")
@click.argument("username")
def set_password(username):
    """Give USERNAME a new password (stdin or prompt); their open sessions end."""
    user = _user(username)
    password = _read_password()
    with _change():
        administration.reset_password(db.session(), None, _locked(user), password, now())
    click.echo(f"new password set for {user.username!r}")


@users_cli.command("disable")
@click.argument("username")
def disable(username):
    """Disable USERNAME: no more logins, open sessions end."""
    user = _user(username)
    with _change():
        locked = _locked(user)
        if locked.is_active:  # decided under the lock: a repeat is a no-op, even in a race
            administration.disable_user(db.session(), None, locked, now())
    click.echo(f"{user.username!r} is disabled")


@users_cli.command("enable")
@click.argument("username")
def enable(username):
    """Allow a disabled USERNAME to log in again."""
    user = _user(username)
    with _change():
        locked = _locked(user)
        if not locked.is_active:
            administration.enable_user(db.session(), None, locked, now())
    click.echo(f"{user.username!r} is enabled")


def register(app: Flask) -> None:
    app.cli.add_command(users_cli)

