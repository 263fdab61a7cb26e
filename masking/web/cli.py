"""Operator commands: ``flask --app app pool ...``, ``api-user ...``, ``sweep``.

Bad arguments end with a one-line error and exit status 1 (2 for usage), never a traceback;
so does a database that cannot be reached or was never migrated (``OperatorGroup``).
Changes go through ``masking.administration``, as the dashboard's do: each runs in one write
transaction with its audit entry (actor "command line"). Reserving a reserved number (and the
like) or revoking a revoked account changes nothing, writes no audit entry and exits 0, so
scripts can repeat themselves.
"""
from __future__ import annotations

import json
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup, ScriptInfo, with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from masking import accounts, administration, pool, readiness, service
from masking.clock import iso_utc
from masking.db import write_transaction
from masking.humanize import count
from masking.models import ApiAccount, PoolStatus
from masking.web.extensions import db, now as utcnow, settings
from masking.web.service_client import dashboard_user_ids


class _ReportsDatabaseProblems:
    """A database that is down or not migrated ends the command with one line (readiness.problem_of)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SQLAlchemyError as exc:
            problem = readiness.problem_of(exc, _database_url(ctx))
            if problem is None:
                raise
            raise click.ClickException(problem) from None


def _database_url(ctx: click.Context) -> str | None:
    """The URL of the app's database (the app context is gone once the command has failed)."""
    info = ctx.find_object(ScriptInfo)
    return info.load_app().config.get("SQLALCHEMY_DATABASE_URI") if info is not None else None


class OperatorGroup(_ReportsDatabaseProblems, AppGroup):
    """A group of operator commands (every command under it runs with the app context)."""


class OperatorCommand(_ReportsDatabaseProblems, click.Command):
    """A single operator command."""


pool_cli = OperatorGroup("pool", help="Manage the pool of masking numbers.")
api_user_cli = OperatorGroup("api-user", help="Manage API accounts (userId and token).")


# Two commands (or an admin page) adding the same number at the same moment: the unique index
# refuses the second, whose transaction is rolled back whole.
POOL_CONFLICT = "another change to the pool added some of these numbers at the same moment; nothing was " \
                "changed: run the command again (numbers already in the pool are skipped)"


def _print_report(report: pool.ImportReport, what: str, position: str = "line") -> None:
    click.echo(f"{what}: {len(report.added)} added, {len(report.already_present)} already in the pool, "
               f"{len(report.rejected)} rejected")
    for line, reason in report.rejected:
        click.echo(f"  {position} {line}: {reason}", err=True)


@pool_cli.command("add")
@click.argument("numbers", nargs=-1, required=True)
@click.option("--status", type=click.Choice(["active", "reserved"]), default="active", show_default=True)
def pool_add(numbers, status):
    """Add NUMBERS to the pool (any notation; national numbers use DEFAULT_REGION)."""
    try:
        with write_transaction(db.session()):
            report = administration.add_numbers(db.session(), None, list(numbers), utcnow(),
                                                settings().default_region, status)
    except IntegrityError:
        raise click.ClickException(POOL_CONFLICT) from None
    _print_report(report, "numbers", "argument")
    if report.rejected:
        raise SystemExit(1)


@pool_cli.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def pool_import(csv_file: Path):
    """Import a CSV file: one number per line, optional second column status.

    Bad lines are reported by line number; good lines are kept; numbers already in
    the pool are left as they are, so importing the same file twice adds nothing.
    """
    data = csv_file.read_bytes()  # before taking the write lock
    try:
        with write_transaction(db.session()):
            report = administration.import_numbers(db.session(), None, data, csv_file.name, utcnow(),
                                                   settings().default_region)
    except administration.AdminError as exc:
        raise click.ClickException(str(exc)) from None
    except IntegrityError:
        raise click.ClickException(POOL_CONFLICT) from None
    _print_report(report, str(csv_file))
    if report.rejected:
        raise SystemExit(1)


@pool_cli.command("list")
@click.option("--status", type=click.Choice(PoolStatus.ALL))
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
def pool_list(status, as_json):
    """List pool numbers with their status and current use."""
    rows = pool.list_numbers(db.session(), utcnow(), status)
    if as_json:
        click.echo(json.dumps([
            {"number": r.number.number, "country": r.number.country, "status": r.number.status,
             "active_maskings": r.active_maskings, "allocations": r.number.allocation_count} for r in rows
        ]))
        return
    click.echo(f"{'number':<17} {'country':<7} {'status':<9} {'active':>6} {'allocations':>11}")
    for r in rows:
        click.echo(f"{r.number.number:<17} {r.number.country:<7} {r.number.status:<9} "
                   f"{r.active_maskings:>6} {r.number.allocation_count:>11}")
    click.echo(count(len(rows), "number"))


def _set_status(number: str, status: str) -> None:
    try:
        with write_transaction(db.session()):
            row = pool.find(db.session(), number, settings().default_region)
            if row.status == status:
                click.echo(f"{row.number} is already {status}")
                return
            administration.set_number_status(db.session(), None, row, status, utcnow())
    except (LookupError, ValueError) as exc:  # AdminError is a ValueError
        raise click.ClickException(exc.args[0]) from None
    click.echo(f"{row.number} is now {row.status}")


@pool_cli.command("reserve")
@click.argument("number")
def pool_reserve(number):
    """Keep NUMBER out of automatic allocation (its live maskings run on)."""
    _set_status(number, "reserved")


@pool_cli.command("retire")
@click.argument("number")
def pool_retire(number):
    """Retire NUMBER: never given out again (its live maskings run on)."""
    _set_status(number, "retired")


@pool_cli.command("activate")
@click.argument("number")
def pool_activate(number):
    """Return a reserved or retired NUMBER to automatic allocation."""
    _set_status(number, "active")


@api_user_cli.command("create")
@click.argument("name")
@click.option("--read-only", is_flag=True, help="May get and list maskings, not set or unset them "
                                                  "(needs --reads-for).")
@click.option("--reads-for", "reads_for", metavar="USERID",
              help="Read-only, reading the maskings of USERID, an active read-write account.")
@click.option("--json", "as_json", is_flag=True, help='Print {"userId": ..., "token": ...} only.')
def api_user_create(name, read_only, reads_for, as_json):
    """Create an API account NAME and print its userId and token (shown only now)."""
    if reads_for is not None:
        reads_for = reads_for.strip()
        if not reads_for:
            raise click.ClickException("--reads-for needs the userId of the account to read for")
    if read_only and not reads_for:
        raise click.ClickException("a read-only account needs --reads-for USERID: the read-write account whose "
                                   "maskings it gets and lists (it makes none of its own)")
    try:
        with write_transaction(db.session()):
            created = administration.create_api_account(db.session(), None, name, not reads_for, utcnow(),
                                                        reads_for_user_id=reads_for)
    except administration.AdminError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"userId": created.account.user_id, "token": created.token}))
        return
    click.echo(f"userId: {created.account.user_id}")
    click.echo(f"token:  {created.token}")
    click.echo("Keep the token now: only its hash is stored, it cannot be shown again.", err=True)


def _existing_account(user_id: str) -> ApiAccount:
    # Not printable (a lone surrogate from bytes the terminal could not decode): no userId, and
    # the database could not be asked about it.
    account = accounts.find_account(db.session(), user_id) if user_id.isprintable() else None
    if account is None and user_id == accounts.DASHBOARD_USER_ID:
        raise click.ClickException(f"no API account with userId {user_id!r} yet: the dashboard's own account is "
                                   "made at the dashboard's first call to the service")
    if account is None:
        raise click.ClickException(f"no API account with userId {user_id!r}")
    return account


def _grace_minutes(text: str) -> int:
    """--grace-minutes as a number; a refusal is one line and exit 1, like the rules' own refusals."""
    text = text.strip()
    if not (text.isascii() and text.isdecimal()) or len(text) > 9:  # the rules refuse above 7 days
        raise click.ClickException(f"--grace-minutes must be a whole number of minutes from 0 to "
                                   f"{accounts.MAX_GRACE_MINUTES} (7 days), not {text!r}")
    return int(text)


@api_user_cli.command("rotate")
@click.argument("user_id")
@click.option("--grace-minutes", "grace", default="0", metavar="N", show_default=True,
              help=f"How long the old token keeps working (0 to {accounts.MAX_GRACE_MINUTES}). "
                   "0: it stops now and the account's open ssids are revoked.")
@click.option("--force", is_flag=True, help="Needed to stop the old token at once (--grace-minutes 0) of the "
                                            "account the dashboard masks through (MASKING_API_USER_ID).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"userId": ..., "token": ..., "previous_token_until": ...} only.')
def api_user_rotate(user_id, grace, force, as_json):
    """Give USER_ID a new token (shown only now); its maskings stay its own."""
    minutes = _grace_minutes(grace)
    try:
        with write_transaction(db.session()):
            rotated = administration.rotate_api_account(db.session(), None, _existing_account(user_id), utcnow(),
                                                        minutes, dashboard_user_ids=dashboard_user_ids(),
                                                        dashboard_confirmed=force)
    except administration.DashboardAccountError as exc:
        raise click.ClickException(f"{exc} Add --force to stop it at once anyway.") from None
    except administration.AdminError as exc:
        raise click.ClickException(str(exc)) from None
    until = iso_utc(rotated.account.previous_token_until)
    if as_json:
        click.echo(json.dumps({"userId": rotated.account.user_id, "token": rotated.token,
                               "previous_token_until": until}))
        return
    click.echo(f"userId: {rotated.account.user_id}")
    click.echo(f"token:  {rotated.token}")
    click.echo(f"old token works until {until}" if until else
               "old token stopped now; the account's open ssids were revoked")
    if rotated.account.user_id in dashboard_user_ids():
        click.echo("The dashboard masks numbers through this account: set MASKING_API_TOKEN to the new token "
                   f"and restart the app{' before then' if until else ''}.", err=True)
    click.echo("Keep the token now: only its hash is stored, it cannot be shown again.", err=True)


@api_user_cli.command("revoke")
@click.argument("user_id")
@click.option("--force", is_flag=True, help=f"Needed to revoke {accounts.DASHBOARD_USER_ID!r}, the dashboard's own "
                                            "account, or the one named in MASKING_API_USER_ID.")
def api_user_revoke(user_id, force):
    """Revoke USER_ID's token and every ssid it opened."""
    readers = []
    try:
        with write_transaction(db.session()):
            account = _existing_account(user_id)
            if account.revoked_at is None:
                readers = administration.revoke_api_account(db.session(), None, account, utcnow(),
                                                            dashboard_user_ids=dashboard_user_ids(),
                                                            dashboard_confirmed=force)
    except administration.DashboardAccountError as exc:
        raise click.ClickException(f"{exc} Add --force to revoke it anyway.") from None
    click.echo(f"{account.user_id} ({account.name}) revoked at {iso_utc(account.revoked_at)}")
    if readers:
        click.echo(f"its readers read nothing more: {', '.join(readers)}")


@api_user_cli.command("list")
def api_user_list():
    """List API accounts (never their tokens)."""
    now = utcnow()
    for account in db.session.scalars(select(ApiAccount).order_by(ApiAccount.id)):
        state = "revoked" if account.revoked_at else ("read-write" if account.can_write else "read-only")
        owner = account.reads_for
        reads = (f"  (reads for {owner.user_id}{', revoked: reads nothing' if owner.revoked_at else ''})"
                 if owner else "")
        old_until = account.old_token_until(now)
        grace = f"  (old token works until {iso_utc(old_until)})" if old_until else ""
        click.echo(f"{account.user_id}  {state:<10}  {account.name}{reads}{grace}")


@click.command("sweep", cls=OperatorCommand)
@with_appcontext  # a plain click command: app.cli alone (as in the test runner) pushes no app context
def sweep_command():
    """Delete leases whose time has passed (housekeeping; expiry never waits for it)."""
    removed = service.sweep(db.session(), utcnow())
    click.echo(f"removed {removed['routes']} routes and {removed['pairs']} pairs")


def register(app: Flask) -> None:
    app.cli.add_command(pool_cli)
    app.cli.add_command(api_user_cli)
    app.cli.add_command(sweep_command)
    from masking.web import users_cli  # the dashboard's users

    users_cli.register(app)
