"""The supervisors' history: every attempt of every agent, filtered, paged, revealed, exported.

Thin views over ``masking.history`` (filters, keyset pages, the CSV) and ``masking.audit``:

* ``GET /history``: the page; for htmx (the filter form, the page links, with
  ``hx-push-url``) only the results. Every filter is in the query string, so a view can be
  bookmarked and shared. Bad input is shown in words on the page, never an error status.
* ``POST /history/<id>/reveal``: the row again with its full numbers; recorded in the audit log.
* ``POST /history/export``: the current filter as CSV, streamed in keyset batches; numbers
  hidden or full (chosen on the page); every export is recorded in the audit log.
"""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, abort, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from masking import attempts, audit, history
from masking.db import write_transaction
from masking.humanize import to_local
from masking.models import MaskAttempt, Role, User
from masking.phone import redact
from masking.web.auth import role_required
from masking.web.dashboard import nav_item
from masking.web.extensions import db, now, settings
from masking.web.htmx import htmx, render

bp = Blueprint("supervisor", __name__)
ROLES = (Role.SUPERVISOR, Role.ADMIN)
nav_item("supervisor.history", "History", *ROLES)

REVEAL_ACTION = "reveal numbers"
EXPORT_ACTION = "export history"


def _country_code() -> str:
    return history.country_code_of(settings().default_region)


def _link(query: history.HistoryQuery, **cursor) -> str:
    params = query.params(**cursor)
    return url_for("supervisor.history") + ("?" + urlencode(params) if params else "")


@bp.get("/history", endpoint="history")
@role_required(*ROLES)
def history_page():
    session = db.session()
    query = history.parse(request.args, session=session, zone=settings().zone)
    page = None
    if query.ok:
        page = history.page(session, query.filters, now(), country_code=_country_code(), before=query.before,
                            after=query.after)
    # A back/forward navigation htmx could not restore from its cache asks for the whole page.
    partial = None if htmx.history_restore_request else "supervisor/_history.html"
    return render("supervisor/history.html", partial, **_context(query, page))


def _context(query: history.HistoryQuery, page: history.Page | None) -> dict:
    session = db.session()
    agents = session.scalars(select(User.username).order_by(User.username)).all()
    # Only reads here: end the transaction now. commit, not rollback: a rollback would expire
    # the rows already loaded and the template would reload each one (50 queries a page).
    session.commit()
    return {"query": query, "results": page, "agents": agents, "outcomes": history.outcome_choices(),
            "link": lambda **cursor: _link(query, **cursor), **_row_context()}


def _row_context(revealed: int | None = None) -> dict:
    moment = now()
    return {"revealed": revealed, "state": lambda row: attempts.status(row, moment),
            "failure": history.failure_label, "redact": redact}


@bp.post("/history/<id:attempt_id>/reveal")
@role_required(*ROLES)
def reveal(attempt_id: int):
    session = db.session()
    attempt = session.get(MaskAttempt, attempt_id)
    if attempt is None:
        abort(404)
    agent = attempt.user.username if attempt.user else "?"
    with write_transaction(session):
        audit.record(session, current_user, REVEAL_ACTION, now(), target=f"attempt #{attempt.id}",
                     detail=f"first, second and masking numbers of the {attempt.action} attempt #{attempt.id} "
                            f"by {agent}")
    return render("supervisor/reveal.html", "supervisor/_row.html", row=attempt, **_row_context(attempt.id))


@bp.post("/history/export")
@role_required(*ROLES)
def export():
    session = db.session()
    query = history.parse(request.form, session=session, zone=settings().zone)
    if not query.ok:
        return render("supervisor/history.html", "supervisor/_history.html", **_context(query, None))
    numbers = history.FULL if request.form.get("numbers") == history.FULL else history.HIDDEN
    moment = now()
    with write_transaction(session):
        audit.record(session, current_user, EXPORT_ACTION, moment, target=query.describe()[:200],
                     detail=f"CSV export, numbers {numbers}; filters: {query.describe()}")
    zone = settings().zone
    chunks = _stream(db.engine, query.filters, moment, zone, numbers, _country_code())
    filename = f"masking-history-{to_local(moment, zone):%Y%m%d-%H%M}.csv"
    response = Response(chunks, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front passes chunks on as they come
    return response


def _stream(engine, filters: history.Filters, moment, zone, numbers: str, country_code: str):
    """The CSV chunks, read with a session of their own: the generator runs after the view has
    returned and needs no request context (a client that never reads it leaves nothing open)."""
    with Session(engine) as session:
        yield from history.export_csv(session, filters, moment, zone=zone, numbers=numbers,
                                      country_code=country_code)
