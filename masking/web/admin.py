"""The admin's pages: users, the pool of masking numbers, API credentials, and the audit log.

Views are thin: the rules and the audit entries are in ``masking.administration``, each
action runs in one ``write_transaction`` (the change and its audit entry together, or
nothing), and a refusal is answered on the page in plain words with what the admin typed
kept (never a password).

**The pool is managed directly.** The dashboard and the masking service are one codebase
over one database, and the pool is this service's own: the admin pages call
``masking.pool`` on that database instead of a (non-existent) pool API. Only masking
operations (``set``, ``unset``, ``get``) go over HTTP to the service
(``masking.web.service_client``), as they must work against the vendor's service too.
The pool list shows what ``masking.pool.list_numbers`` shows (status, live maskings per
number) a page at a time (``masking.administration.pool_page``, keyset on the number): a
pool of tens of thousands of numbers would otherwise make a page of megabytes.

The CSV import runs ``masking.pool.import_csv`` in one write transaction: a big file holds
SQLite's write lock while it runs (about 5 s per 20,000 lines on this machine).

Answers: htmx requests get the partial they target (200, also for refusals, since htmx 2
swaps no 4xx); a plain form post gets a 303 back to the page after success, or the whole
page with the error and status 422.

Settings: ``POOL_IMPORT_MAX_BYTES`` (5 MB): the largest CSV file accepted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import Blueprint, abort, current_app, flash, request, url_for
from flask_login import current_user, login_user
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import RequestEntityTooLarge

from masking import administration as admin
from masking import audit, pool
from masking.db import write_transaction
from masking.models import MAX_ROW_ID, ApiAccount, PoolNumber, PoolStatus, Role, User
from masking.phone import ascii_digits
from masking.users import MIN_PASSWORD_LENGTH, ROLES
from masking.web.auth import role_required
from masking.web.dashboard import nav_item
from masking.web.extensions import db, now, settings
from masking.web.htmx import is_htmx, redirect_to, render
from masking.web.service_client import BUILTIN_USER_ID, dashboard_user_ids

bp = Blueprint("admin", __name__, url_prefix="/admin")
ADMIN = Role.ADMIN
AUDIT_READERS = (Role.SUPERVISOR, Role.ADMIN)
nav_item("admin.users", "Users", ADMIN)
nav_item("admin.pool_page", "Pool", ADMIN)
nav_item("admin.credentials", "API credentials", ADMIN)
nav_item("admin.audit_log", "Audit log", *AUDIT_READERS)

DEFAULT_IMPORT_MAX_BYTES = 5 * 1024 * 1024
MAX_ADD_LINES = 1000
AUDIT_PAGE_SIZE = 50
POOL_PAGE_SIZE = 100
BUILTIN_CONFIRMATION = "revoke"
# Typed to stop the old token of the account the dashboard masks through at once (a leaked token).
AT_ONCE_CONFIRMATION = "now"
# "New token": when the old token stops (form value: minutes). At once is first, for a leaked token.
GRACE_CHOICES = {"0": "at once (its open sessions end too)", "60": "in 1 hour", "1440": "in 24 hours",
                 "10080": "in 7 days"}


def import_limit() -> int:
    return int(current_app.config.get("POOL_IMPORT_MAX_BYTES") or DEFAULT_IMPORT_MAX_BYTES)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB" if size >= 1024 * 1024 else f"{size // 1024} KB"


def _without_controls(text: str) -> str:
    """``text`` without control characters (PostgreSQL refuses NUL in text columns)."""
    return "".join(ch for ch in text if ch >= " " and ch != "\x7f")


def _refused_status() -> int:
    """A refusal: 200 for htmx (which swaps no 4xx), 422 for a plain form post."""
    return 200 if is_htmx() else 422


def _done(notice: str, page_endpoint: str, is_error: bool = False):
    """After a plain form post (or a change that leaves this page): the message on the page to show next."""
    flash(notice, "error" if is_error else "info")
    return redirect_to(url_for(page_endpoint))


# ================================================================ users

@dataclass
class UserForm:
    username: str = ""
    role: str = Role.AGENT
    errors: dict[str, str] = field(default_factory=dict)


def _users_page(*, form: UserForm | None = None, created: str | None = None, notice: str | None = None,
                notice_is_error: bool = False, status: int = 200, partial: str = "admin/_users.html"):
    context = {"form": form or UserForm(), "created": created, "notice": notice, "notice_is_error": notice_is_error,
               "roles": ROLES, "min_password": MIN_PASSWORD_LENGTH}
    if partial == "admin/_users.html" or not is_htmx():
        everyone = admin.list_users(db.session())
        context["people"] = everyone
        context["active_admins"] = sum(1 for u in everyone if u.role == ADMIN and u.is_active)
    return render("admin/users.html", partial, status=status, **context)


@bp.get("/users")
@role_required(ADMIN)
def users():
    return _users_page()


@bp.post("/users")
@role_required(ADMIN)
def create_user():
    values = request.form
    form = UserForm(username=(values.get("username") or "").strip()[:64], role=values.get("role") or "")
    password = values.get("password") or ""
    if not form.username:
        form.errors["username"] = "Enter a username."
    if form.role not in ROLES:
        form.errors["role"] = "Choose a role."
    if not password:
        form.errors["password"] = "Enter a password for the new user."
    if not form.errors:
        try:
            with write_transaction(db.session()):
                user = admin.create_user(db.session(), current_user, form.username, password, form.role, now())
        except admin.AdminError as exc:
            message = str(exc)
            key = "password" if "password" in message.lower() else "username"
            form.errors[key] = message
        except IntegrityError:  # created by someone else at the same moment
            form.errors["username"] = f"A user named {form.username.lower()!r} already exists."
    if form.errors:
        return _users_page(form=form, status=_refused_status(), partial="admin/_user_form.html")
    notice = f"Created {user.role} {user.username}. Give them the password in person or by another channel."
    if not is_htmx():
        return _done(notice, "admin.users")
    response = _users_page(created=notice, partial="admin/_user_form.html")
    response.headers["HX-Trigger"] = "users-changed"
    return response


def _target_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


def _user_action(user_id: int, act) -> object:
    """Run ``act(locked_user)`` in a write transaction; answer with the users list and a notice."""
    _target_user(user_id)
    try:
        with write_transaction(db.session()):
            user = admin.lock_user(db.session(), user_id)
            if user is None:
                abort(404)
            notice = act(user)
    except admin.AdminError as exc:
        return _users_page(notice=str(exc), notice_is_error=True, status=_refused_status())
    if not current_user.is_active or current_user.role != ADMIN:  # they changed themselves out of this page
        return _done(notice, "agent.index")
    if not is_htmx():
        return _done(notice, "admin.users")
    return _users_page(notice=notice)


@bp.post("/users/<id:user_id>/disable")
@role_required(ADMIN)
def disable_user(user_id: int):
    def act(user):
        admin.disable_user(db.session(), current_user, user, now())
        return f"{user.username} is disabled: they cannot log in, and their open sessions have ended."
    return _user_action(user_id, act)


@bp.post("/users/<id:user_id>/enable")
@role_required(ADMIN)
def enable_user(user_id: int):
    def act(user):
        admin.enable_user(db.session(), current_user, user, now())
        return f"{user.username} is enabled and can log in again."
    return _user_action(user_id, act)


@bp.post("/users/<id:user_id>/password")
@role_required(ADMIN)
def reset_password(user_id: int):
    password = request.form.get("password") or ""

    def act(user):
        if not password:
            raise admin.AdminError(f"Type the new password for {user.username}.")
        admin.reset_password(db.session(), current_user, user, password, now())
        if user.id == current_user.id:
            login_user(user)  # the new session epoch: stay logged in here, other sessions end
            return "Your password is changed; your other sessions have ended."
        return f"New password set for {user.username}; their open sessions have ended."
    return _user_action(user_id, act)


@bp.post("/users/<id:user_id>/role")
@role_required(ADMIN)
def change_role(user_id: int):
    role = request.form.get("role") or ""

    def act(user):
        admin.change_role(db.session(), current_user, user, role, now())
        return f"{user.username} is now {'an' if role[:1] in 'aeiou' else 'a'} {role}."
    return _user_action(user_id, act)


# ================================================================ the pool

@dataclass
class AddForm:
    numbers: str = ""
    status: str = PoolStatus.ACTIVE
    error: str | None = None
    report: pool.ImportReport | None = None


def _status_filter() -> str:
    status = request.args.get("status") or ""
    return status if status in PoolStatus.ALL else ""


def _pool_query() -> dict[str, str]:
    """The list's filter from the URL: status and digits (what the admin looks for)."""
    digits = ascii_digits(request.args.get("digits") or "")[:16]
    return {key: value for key, value in (("status", _status_filter()), ("digits", digits)) if value}


def _pool_page(partial: str = "admin/_pool_list.html", *, status: int = 200, **extra):
    query = _pool_query()
    context = {"add": AddForm(), "import_report": None, "import_error": None, "import_name": "",
               "notice": None, "notice_is_error": False, "statuses": PoolStatus.ALL,
               "status_filter": query.get("status", ""), "digits": query.get("digits", ""), "list_query": query,
               "import_max": _megabytes(import_limit()),
               "import_max_bytes": import_limit(), "max_add_lines": MAX_ADD_LINES,
               "default_region": settings().default_region}
    context.update(extra)
    if partial == "admin/_pool_list.html" or not is_htmx():
        after = (request.args.get("after") or "")[:16] or None
        page = admin.pool_page(db.session(), now(), status=query.get("status"), digits=query.get("digits"),
                               after=after, limit=POOL_PAGE_SIZE)
        context.update(numbers=page.numbers, after=after, summary=admin.pool_summary(db.session(), now()),
                       next_url=url_for("admin.pool_page", **query, after=page.next_after) if page.next_after
                       else None)
    return render("admin/pool.html", partial, status=status, **context)


@bp.get("/pool")
@role_required(ADMIN)
def pool_page():
    return _pool_page()


@bp.post("/pool/add")
@role_required(ADMIN)
def pool_add():
    text = (request.form.get("numbers") or "")
    status = request.form.get("status") or PoolStatus.ACTIVE
    form = AddForm(numbers=text, status=status if status in (PoolStatus.ACTIVE, PoolStatus.RESERVED)
                   else PoolStatus.ACTIVE)
    lines = text.splitlines()
    if len(lines) > MAX_ADD_LINES:
        form.error = (f"That is {len(lines)} lines; add at most {MAX_ADD_LINES} here, "
                      "or import them as a CSV file below.")
    else:
        try:
            with write_transaction(db.session()):
                form.report = admin.add_typed_numbers(db.session(), current_user, lines, now(),
                                                      settings().default_region, form.status)
        except admin.AdminError as exc:
            form.error = str(exc)
        except IntegrityError:
            form.error = "Someone else changed the pool at the same moment. Nothing was added; try again."
    if form.error:
        return _pool_page("admin/_pool_add.html", add=form, status=_refused_status())
    if not form.report.rejected:
        form.numbers = ""  # all taken: an empty box for the next batch
    if not is_htmx() and not form.report.rejected:
        return _done(_report_sentence(form.report), "admin.pool_page")
    response = _pool_page("admin/_pool_add.html", add=form, status=200 if is_htmx() or not form.report.rejected
                          else 422)
    response.headers["HX-Trigger"] = "pool-changed"
    return response


def _report_sentence(report: pool.ImportReport) -> str:
    return (f"{len(report.added)} added, {len(report.already_present)} already in the pool, "
            f"{len(report.rejected)} rejected.")


@bp.url_value_preprocessor
def _limit_upload(endpoint, values):
    # Runs before the CSRF check reads the form: a file over the limit is refused unread.
    if endpoint == "admin.pool_import":
        request.max_content_length = import_limit() + 64 * 1024  # room for the other form fields


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(error):
    if request.endpoint == "admin.pool_import":
        return _import_answer(error=_too_large_message())
    if request.endpoint == "admin.pool_add":
        return _pool_page("admin/_pool_add.html", add=AddForm(error=(
            f"That is too much text to add at once; add at most {MAX_ADD_LINES} numbers here, or import a CSV file.")),
            status=_refused_status())
    return error


def _too_large_message() -> str:
    return (f"The file is larger than {_megabytes(import_limit())}. Split it into smaller files "
            "and import them one after the other.")


def _import_answer(*, error: str | None = None, report: pool.ImportReport | None = None, name: str = ""):
    if not is_htmx() and error is None and report is not None and not report.rejected:
        return _done(f"{name}: {_report_sentence(report)}", "admin.pool_page")
    status = 200 if is_htmx() or (error is None and not (report and report.rejected)) else 422
    response = _pool_page("admin/_pool_import_report.html", import_error=error, import_report=report,
                          import_name=name, status=status)
    if report is not None:
        response.headers["HX-Trigger"] = "pool-changed"
    return response


@bp.post("/pool/import")
@role_required(ADMIN)
def pool_import():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _import_answer(error="Choose a CSV file to import.")
    name = _without_controls(upload.filename)[:200] or "upload"
    try:
        data = upload.stream.read(import_limit() + 1)
    finally:
        upload.close()  # a large upload is spooled to a temporary file
    if len(data) > import_limit():
        return _import_answer(error=_too_large_message(), name=name)
    try:
        with write_transaction(db.session()):
            report = admin.import_numbers(db.session(), current_user, data, name, now(), settings().default_region)
    except admin.AdminError as exc:
        return _import_answer(error=f"{name}: {exc}", name=name)
    except IntegrityError:
        return _import_answer(error="Someone else changed the pool at the same moment. Nothing was imported; "
                                    "import the file again.", name=name)
    return _import_answer(report=report, name=name)


@bp.post("/pool/<id:number_id>/status")
@role_required(ADMIN)
def pool_status(number_id: int):
    number = db.session.get(PoolNumber, number_id)
    if number is None:
        abort(404)
    status = request.form.get("status") or ""
    labels = {PoolStatus.ACTIVE: "active again: it is given out to new masks",
              PoolStatus.RESERVED: "reserved: not given out to new masks; its live masks run to their end",
              PoolStatus.RETIRED: "retired: never given out again; its live masks run to their end"}
    try:
        with write_transaction(db.session()):
            row = admin.set_number_status(db.session(), current_user, number, status, now())
        notice, is_error = f"{row.number} is {labels[status]}.", False
    except admin.AdminError as exc:
        notice, is_error = str(exc), True
    if not is_htmx():
        return _done(notice, "admin.pool_page", is_error)
    return _pool_page(notice=notice, notice_is_error=is_error)


# ================================================================ API credentials

@dataclass
class CredentialForm:
    name: str = ""
    access: str = "read-write"
    reads_for: str = ""  # userId of the account a read-only one reads for
    error: str | None = None
    error_field: str = "name"  # where the error is shown: "name", "access" or "reads_for"


def _credentials_page(partial: str = "admin/_credentials.html", *, status: int = 200, **extra):
    context = {"form": CredentialForm(), "created": None, "rotated": None, "notice": None, "notice_is_error": False,
               "builtin_user_id": BUILTIN_USER_ID, "builtin_confirmation": BUILTIN_CONFIRMATION,
               "at_once_confirmation": AT_ONCE_CONFIRMATION, "dashboard_ids": dashboard_user_ids(),
               "grace_choices": GRACE_CHOICES, "now": now(),
               "readable_accounts": admin.readable_api_accounts(db.session())}
    context.update(extra)
    if partial == "admin/_credentials.html" or not is_htmx():
        context["api_accounts"] = admin.list_api_accounts(db.session())
        # Who stops reading when an account is revoked: its revoke confirmation names them.
        readers: dict[int, list[str]] = {}
        for account in context["api_accounts"]:
            if account.reads_for_id is not None and account.revoked_at is None:
                readers.setdefault(account.reads_for_id, []).append(account.user_id)
        context["readers"] = {owner: sorted(user_ids) for owner, user_ids in readers.items()}
    return render("admin/credentials.html", partial, status=status, **context)


@bp.get("/credentials")
@role_required(ADMIN)
def credentials():
    return _credentials_page()


@bp.post("/credentials")
@role_required(ADMIN)
def create_credential():
    access = request.form.get("access") or ""
    form = CredentialForm(name=(request.form.get("name") or "").strip()[:200],
                          access=access if access in ("read-write", "read-only") else "",
                          reads_for=_without_controls(request.form.get("reads_for") or "").strip()[:40])
    if not form.name:
        form.error = "Enter a name for the account (who or what will use it)."
    elif _without_controls(form.name) != form.name:
        form.error = "The name must not contain control characters (tabs, line breaks and the like)."
    elif len(form.name) > 120:
        form.error = "The name must be at most 120 characters."
    elif not form.access:
        form.error, form.error_field = "Choose read-write or read-only.", "access"
    created = None
    if not form.error:
        try:
            with write_transaction(db.session()):
                created = admin.create_api_account(
                    db.session(), current_user, form.name, form.access == "read-write", now(),
                    reads_for_user_id=form.reads_for if form.access == "read-only" else None)
        except admin.ReadsForError as exc:
            form.error, form.error_field = str(exc), "reads_for"
        except admin.AdminError as exc:
            form.error = str(exc)
    if form.error:
        return _credentials_page("admin/_credential_form.html", form=form, status=_refused_status())
    # The token exists in clear only in this answer (never flashed, never stored): show it on the page.
    response = _credentials_page("admin/_credential_form.html", created=created)
    response.headers["HX-Trigger"] = "credentials-changed"
    response.headers["Cache-Control"] = "no-store"
    return response


def _target_account(account_id: int) -> ApiAccount:
    account = db.session.get(ApiAccount, account_id)
    if account is None:
        abort(404)
    return account


@bp.post("/credentials/<id:account_id>/rotate")
@role_required(ADMIN)
def rotate_credential(account_id: int):
    account = _target_account(account_id)
    grace = request.form.get("grace") or ""
    confirmed = (request.form.get("confirm") or "").strip().lower() == AT_ONCE_CONFIRMATION
    if grace not in GRACE_CHOICES:
        notice = f"No new token for {account.user_id}: choose when its old token stops."
    else:
        try:
            with write_transaction(db.session()):
                rotated = admin.rotate_api_account(db.session(), current_user, account, now(), int(grace),
                                                   dashboard_user_ids=dashboard_user_ids(),
                                                   dashboard_confirmed=confirmed)
        except admin.DashboardAccountError as exc:
            notice = (f"No new token. {exc} To stop it at once anyway (a leaked token), type "
                      f"“{AT_ONCE_CONFIRMATION}” in its confirmation box.")
        except admin.AdminError as exc:
            notice = f"No new token. {exc}"
        else:
            # The token exists in clear only in this answer (never flashed, never stored), as at creation.
            response = _credentials_page(rotated=rotated)
            response.headers["Cache-Control"] = "no-store"
            return response
    if not is_htmx():
        return _done(notice, "admin.credentials", True)
    return _credentials_page(notice=notice, notice_is_error=True)


@bp.post("/credentials/<id:account_id>/revoke")
@role_required(ADMIN)
def revoke_credential(account_id: int):
    account = _target_account(account_id)
    confirmed = (request.form.get("confirm") or "").strip().lower() == BUILTIN_CONFIRMATION
    notice, is_error = None, False
    try:
        with write_transaction(db.session()):
            readers = admin.revoke_api_account(db.session(), current_user, account, now(),
                                               dashboard_user_ids=dashboard_user_ids(), dashboard_confirmed=confirmed)
        notice = f"{account.user_id} ({account.name}) is revoked: its token and sessions no longer work."
        if readers:
            notice += (" The read-only accounts that read its masks read nothing more: "
                       f"{', '.join(readers)}.")
    except admin.DashboardAccountError as exc:
        notice, is_error = (f"Not revoked. {exc} To revoke it anyway, type “{BUILTIN_CONFIRMATION}” in its "
                            "confirmation box."), True
    except admin.AdminError as exc:
        notice, is_error = str(exc), True
    if not is_htmx():
        return _done(notice, "admin.credentials", is_error)
    return _credentials_page(notice=notice, notice_is_error=is_error)


# ================================================================ the audit log

def _query_text(name: str, limit: int) -> str:
    """A filter from the URL, without control characters."""
    return _without_controls(request.args.get(name) or "").strip()[:limit]


@bp.get("/audit")
@role_required(*AUDIT_READERS)
def audit_log():
    actor, action = _query_text("actor", 64), _query_text("action", 40)
    before_text = request.args.get("before") or ""
    before = int(before_text) if before_text.isdecimal() and len(before_text) <= 10 else None
    before = before if before is not None and before <= MAX_ROW_ID else None
    session = db.session()
    page = admin.audit_page(session, actor=actor or None, action=action or None, before=before,
                            limit=AUDIT_PAGE_SIZE)
    older_url = None
    if page.next_before is not None:
        older_url = url_for("admin.audit_log", **{k: v for k, v in
                                                  (("actor", actor), ("action", action)) if v},
                            before=page.next_before)
    return render("admin/audit.html", "admin/_audit.html", results=page, actor=actor, action=action,
                  actions=admin.audit_actions(session), before=before, older_url=older_url,
                  cli_actor=audit.CLI_ACTOR)
