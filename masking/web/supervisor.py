"""The supervisors' history: every attempt of every agent, filtered, paged, revealed, exported.

Thin views over ``masking.history`` (filters, keyset pages, the CSV) and ``masking.audit``:

* ``GET /history``: the page; for htmx (the filter form, the page links, with
  ``hx-push-url``) only the results. Every filter is in the query string, so a view can be
  bookmarked and shared. Bad input is shown in words on the page, never an error status.
* ``POST /history/<id>/reveal``: the row again with its full numbers; recorded in the audit log.
* ``POST /history/export``: the current filter as CSV, streamed in keyset batches; numbers
  hidden or full (chosen on the page); every export is recorded in the audit log.
* ``GET /maskings``: every masking the service holds, whoever made it (API accounts and the
  dashboard), from ``masking.service_report``; same conventions as the history.
* ``POST /maskings/<id>/reveal``: that row again with its full numbers; recorded in the audit log.
* ``POST /maskings/export``: All masks' current filters as CSV, streamed in keyset batches, as
  the history's export (numbers hidden or full; every export recorded in the audit log).
"""
from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, abort, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from masking import attempts, audit, history, service_report
from masking.db import write_transaction
from masking.humanize import to_local
from masking.models import MaskAttempt, Role, User
from masking.phone import redact
from masking.web.auth import role_required
from masking.web.dashboard import nav_item
from masking.web.extensions import db, now, settings
from masking.web import service_client
from masking.web.htmx import htmx, render

bp = Blueprint("supervisor", __name__)
ROLES = (Role.SUPERVISOR, Role.ADMIN)
nav_item("supervisor.history", "History", *ROLES)
nav_item("supervisor.maskings", "All masks", *ROLES)

REVEAL_ACTION = "reveal numbers"
EXPORT_ACTION = "export history"
EXPORT_MASKINGS_ACTION = "export all masks"


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
    chunks = _stream(db.engine, history.export_csv, query.filters, moment, zone=zone, numbers=numbers,
                     country_code=_country_code())
    return _csv_download(chunks, "masking-history", moment, zone)


def _csv_download(chunks, name: str, moment, zone) -> Response:
    """A streamed CSV attachment named after ``name`` and the local minute it was asked for."""
    response = Response(chunks, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{to_local(moment, zone):%Y%m%d-%H%M}.csv"'
    response.headers["Cache-Control"] = "no-store"  # personal data: no copy in a cache
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front passes chunks on as they come
    return response


def _stream(engine, export_csv, filters, moment, **options):
    """The CSV chunks of ``export_csv`` (the history's or All masks'), read with a session of their
    own: the generator runs after the view has returned and needs no request context (a client
    that never reads it leaves nothing open)."""
    with Session(engine) as session:
        yield from export_csv(session, filters, moment, **options)


# ---------------------------------------------------------------- every masking of the service

def _maskings_link(query: service_report.ReportQuery, **cursor) -> str:
    params = query.params(**cursor)
    return url_for("supervisor.maskings") + ("?" + urlencode(params) if params else "")


@bp.get("/maskings", endpoint="maskings")
@role_required(*ROLES)
def maskings_page():
    session = db.session()
    query = service_report.parse(request.args, session=session, zone=settings().zone)
    page, empty = None, False
    moment = now()  # one instant for the state filter and the states shown: a "live" row never says expired
    if query.ok:
        page = service_report.page(session, query.filters, moment, country_code=_country_code(),
                                   dashboard_user_ids=service_client.dashboard_user_ids(),
                                   before=query.before, after=query.after)
        # "No maskings at all" rather than "none match": only asked when it can be so.
        empty = not page.rows and not query.filtered and not service_report.any_masking(session)
    partial = None if htmx.history_restore_request else "supervisor/_maskings.html"
    return render("supervisor/maskings.html", partial, **_maskings_context(query, page, empty, moment))


def _maskings_context(query: service_report.ReportQuery, page: service_report.Page | None,
                      empty: bool = False, moment=None) -> dict:
    session = db.session()
    account_choices = service_report.account_choices(session)
    session.commit()  # only reads: end the transaction (commit expires nothing; see _context)
    return {"query": query, "results": page, "empty": empty, "account_choices": account_choices,
            "states": service_report.STATE_CHOICES, "link": lambda **cursor: _maskings_link(query, **cursor),
            **_masking_row_context(moment=moment)}


def _masking_row_context(revealed: int | None = None, moment=None) -> dict:
    moment = moment or now()
    return {"revealed": revealed, "state": lambda row: row.state(moment), "maker": service_report.maker,
            "redact": redact}


@bp.post("/maskings/<id:masking_id>/reveal")
@role_required(*ROLES)
def reveal_masking(masking_id: int):
    session = db.session()
    row = service_report.one(session, masking_id, service_client.dashboard_user_ids())
    if row is None:
        abort(404)
    with write_transaction(session):
        audit.record(session, current_user, REVEAL_ACTION, now(), target=f"masking #{row.id}",
                     detail=f"first and second numbers of masking #{row.id} made by {service_report.maker(row)}")
    return render("supervisor/maskings.html", "supervisor/_maskings_row.html", single=True, row=row,
                  **_masking_row_context(row.id))


@bp.post("/maskings/export")
@role_required(*ROLES)
def export_maskings():
    session = db.session()
    zone = settings().zone
    query = service_report.parse(request.form, session=session, zone=zone)
    if not query.ok:  # the page again, the filters explained (as the history's export does)
        return render("supervisor/maskings.html", "supervisor/_maskings.html", **_maskings_context(query, None))
    numbers = history.FULL if request.form.get("numbers") == history.FULL else history.HIDDEN
    moment = now()
    with write_transaction(session):
        audit.record(session, current_user, EXPORT_MASKINGS_ACTION, moment, target=query.describe()[:200],
                     detail=f"CSV export of all masks, numbers {numbers}; filters: {query.describe()}")
    chunks = _stream(db.engine, service_report.export_csv, query.filters, moment, zone=zone, numbers=numbers,
                     country_code=_country_code(), dashboard_user_ids=service_client.dashboard_user_ids())
    return _csv_download(chunks, "all-masks", moment, zone)
