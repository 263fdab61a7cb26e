"""The dashboard's foundation: security, sessions, templates, navigation. ``init_app`` wires it.

Conventions for every dashboard blueprint (auth, agent, and later supervisor, admin):

* **One blueprint per area** in ``masking/web/<area>.py``; views stay thin and call the
  plain-Python rules in ``masking/`` (users, attempts, audit, explain, humanize). Register it
  in ``BLUEPRINTS`` below.
* **Roles on the server, on every route**: decorate each view with
  ``@role_required(*roles)`` from ``masking.web.auth`` (logged out: to the login page, or
  ``HX-Redirect`` for htmx; wrong role: 403). The decorator records the roles on the view
  (``view.allowed_roles``) and ``tests/test_dashboard_auth.py`` walks every rule of every
  blueprint with every role, so a new route without it fails the suite. A background view
  (polling) that must not count as activity for the idle timeout is also marked
  ``@passive``.
* **Templates**: pages and their partials in one folder per blueprint
  (``templates/<area>/index.html``, ``templates/<area>/_rows.html``); pages extend
  ``base.html``. Render with ``masking.web.htmx.render(page, partial, ...)``: the partial for
  htmx, the page otherwise. Expected errors are 200 partials (htmx 2 swaps no 4xx).
* **Navigation**: ``nav_item(endpoint, label, *roles)`` adds a link to the header for those
  roles (shown only once the endpoint exists).
* **No inline script or style**: the Content-Security-Policy forbids them. Behaviour goes in
  ``static/js/app.js`` (event delegation on ``data-*`` attributes), looks in
  ``static/css/app.css``. htmx is ``static/vendor/htmx.min.js``, copied from the npm package
  by ``make install``; htmx settings live in ``<meta name="htmx-config">`` of ``base.html``.
* **CSRF** on every POST: forms carry ``{{ csrf_token() }}`` in a hidden ``csrf_token``
  field; htmx requests carry it in ``X-CSRFToken`` (``app.js`` reads ``<meta name="csrf-token">``).
  The API blueprint is exempt (its credentials are in the body).
* **Times** are naive UTC in the database; show them with the filters ``localtime``,
  ``localdatetime``, ``timeleft`` (zone: ``TIMEZONE``); numbers with ``phone``.
* **The masking service** is reached only through ``masking.web.service_client.call``.

Settings: ``SESSION_IDLE_MINUTES`` (30), ``SESSION_COOKIE_SECURE`` (false; set true behind
HTTPS), plus those of ``masking.web.service_client``.
"""
from __future__ import annotations

import importlib
import json
import logging
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.routing import IntegerConverter

from masking import humanize, readiness
from masking.models import MAX_ROW_ID
from masking.settings import flag, session_idle_minutes
from masking.web import api
from masking.web import htmx as htmx_helpers
from masking.web import service_client
from masking.web.extensions import db, now, settings

csrf = CSRFProtect()
log = logging.getLogger("masking.dashboard")

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

# (endpoint, label, roles) in header order; see nav_item().
NAV: list[tuple[str, str, tuple[str, ...]]] = []

# The dashboard's blueprints: modules of masking.web, each with a ``bp``, registered in this order.
BLUEPRINTS: list[str] = ["auth", "agent", "overview", "admin", "supervisor"]


def nav_item(endpoint: str, label: str, *roles: str) -> None:
    if not any(item[0] == endpoint for item in NAV):
        NAV.append((endpoint, label, roles))


def configure(app: Flask) -> None:
    """Check and fill in the dashboard's settings (create_app copies them from the environment:
    Flask presets SESSION_COOKIE_SECURE, so ``key not in config`` never let the environment's in).
    SettingsError for a bad one."""
    config = app.config
    config["SESSION_IDLE_MINUTES"] = session_idle_minutes(config.get("SESSION_IDLE_MINUTES"))
    config["SESSION_COOKIE_SECURE"] = flag("SESSION_COOKIE_SECURE", config.get("SESSION_COOKIE_SECURE"), False)
    config["SESSION_COOKIE_NAME"] = "masking_session"  # Flask presets "session", so no setdefault
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    # The cookie's signature is refused after this, whatever the activity; idleness is checked
    # separately (masking.web.auth) so that background polling does not keep a session alive.
    config.setdefault("PERMANENT_SESSION_LIFETIME", timedelta(hours=12))
    config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the token lives as long as the session
    config.setdefault("WTF_CSRF_SSL_STRICT", True)
    service_client.configure(app)


class DashboardSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened for the dashboard only.

    API calls authenticate with credentials in the body and never use the session; opening
    it anyway builds a signing serializer on every call, the busiest path of the service.
    """

    def open_session(self, app: Flask, request):
        if request.path.startswith(api.PATH_PREFIX):
            return self.make_null_session(app)
        return super().open_session(app, request)


class RowId(IntegerConverter):
    """``<id:name>`` in a route: a row id, 1 to MAX_ROW_ID (what the id columns hold on both
    databases); anything else is a 404 before the view, never an overflow in the query."""

    def __init__(self, url_map, *args, **kwargs):
        super().__init__(url_map, min=1, max=MAX_ROW_ID)


def init_app(app: Flask) -> None:
    configure(app)
    app.url_map.converters["id"] = RowId  # before the blueprints' routes are bound
    app.session_interface = DashboardSessionInterface()
    from masking.web import auth

    csrf.init_app(app)
    csrf.exempt(api.bp)
    htmx_helpers.htmx.init_app(app)
    auth.login_manager.init_app(app)

    for name in BLUEPRINTS:
        app.register_blueprint(importlib.import_module(f"masking.web.{name}").bp)

    app.add_template_filter(lambda m: humanize.local_time(m, settings().zone, now()), "localtime")
    app.add_template_filter(lambda m: humanize.local_datetime(m, settings().zone), "localdatetime")
    app.add_template_filter(lambda m: humanize.time_left(m, now()), "timeleft")
    app.add_template_filter(humanize.phone, "phone")
    app.add_template_filter(lambda text: humanize.local_times_in(text, settings().zone, now()), "localtimes")
    app.context_processor(_template_globals)
    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_failed)
    for code in (403, 404, 405):
        app.register_error_handler(code, _error_page)
    app.register_error_handler(SQLAlchemyError, _database_problem)


def _template_globals() -> dict:
    from flask_login import current_user

    nav = []
    if not g.get("database_down") and current_user.is_authenticated:
        nav = [(endpoint, label) for endpoint, label, roles in NAV
               if current_user.role in roles and endpoint in current_app.view_functions]
    return {"nav": nav, "timezone_name": settings().timezone}


def _is_dashboard_response() -> bool:
    return request.blueprint != "api"


def _security_headers(response: Response) -> Response:
    if not _is_dashboard_response():
        return response
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        headers.setdefault("Cache-Control", "no-store")  # pages carry phone numbers
        response.vary.add("HX-Request")
    return response


def _same_site() -> bool:
    """Was the request sent by one of our own pages? ``Sec-Fetch-Site`` says so where the browser
    sends it; a browser without it (Safari before 16.4) still sends ``Origin`` with a POST, and
    another site's form is told apart by that (the host alone: a proxy in front may end TLS)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc.lower() == request.host.lower()


def _csrf_failed(error: CSRFError):
    """A POST refused for its CSRF token: nothing was done, and nothing the user typed may be lost.

    * htmx, logged out (or idle too long: the CSRF check runs before the idle check): the login
      page, as ``role_required`` sends it (401 + ``HX-Redirect``); ``app.js`` keeps the typed
      input of the page's draft forms in ``sessionStorage`` and puts it back after the login.
    * htmx, logged in, a stale or missing token (the user logged in again in another tab): 200
      that swaps nothing (``HX-Reswap: none``, no reload) and hands the page a fresh token in the
      ``csrf-renewed`` event (``HX-Trigger``); ``app.js`` puts it in the page and says that
      nothing was sent. Safe: a cross-site page can neither send ``HX-Request`` (no CORS, so no
      preflight passes) nor read the answer, and the session cookie is ``SameSite=Lax``.
    * The login form (a plain post) left open while another tab logged in or out: on to the page,
      or a fresh login form (``auth.stale_login_form``); never a dead end.
    * Log out from a page left open past the session's end or another tab's new login: the user
      asked to leave, so they leave. One sent by another site (``Sec-Fetch-Site``, or ``Origin``
      where a browser sends no ``Sec-Fetch-Site``) is still 400.
    * Anything else (a plain form post, a failed referrer check, a fetch from another site): 400.
    """
    from flask_login import current_user
    from flask_wtf.csrf import generate_csrf

    from masking.web import auth

    stale_token = "referrer" not in (error.description or "").lower()  # a new token cures no referrer
    same_site = _same_site()
    if request.endpoint == "auth.logout" and stale_token and same_site:
        return auth.logout()
    if htmx_helpers.is_htmx():
        auth.end_idle_session()
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()
        if stale_token and same_site:
            log.info("stale CSRF token on %s from user %s: new token handed out", request.path, current_user.id)
            renewed = {"csrf-renewed": {"token": generate_csrf(), "user": current_user.username}}
            return htmx_helpers.vary(Response(status=200, headers={
                "HX-Reswap": "none", "HX-Trigger": json.dumps(renewed), "Cache-Control": "no-store"}))
    elif request.endpoint == "auth.login" and stale_token:
        return auth.stale_login_form()
    return render_template("error.html", code=400, title="This form has expired",
                           message="Nothing was sent: the page was out of date (the session ended, or you logged in "
                                   "again in another tab). Go back, reload the page and try again."), 400


_ERRORS = {
    403: ("Not allowed", "Your role does not give access to this page."),
    404: ("Not found", "There is nothing at this address."),
    405: ("Not allowed", "This address does not take this kind of request."),
}


def _error_page(error):
    code = getattr(error, "code", 500)
    if request.blueprint == "api":
        return error
    if request.path.startswith(api.PATH_PREFIX):  # refused by routing, before the API's dispatch
        return api.refused_by_routing(code)
    title, message = _ERRORS.get(code, ("Error", "Something went wrong."))
    return render_template("error.html", code=code, title=title, message=message), code


def _database_problem(error: SQLAlchemyError):
    """A page whose database is down or not migrated: a 503 that says so, not a bare 500.
    Any other database error goes on to Flask's 500 (logged, with the query's values hidden)."""
    problem = readiness.problem_of(error)
    if problem is None or request.blueprint == "api":  # the API answers in its own envelope
        raise error
    try:
        db.session.rollback()
    except SQLAlchemyError:
        pass  # the connection is gone: nothing to undo
    log.error("page %s not served: %s", request.path, problem)
    g.database_down = True  # base.html and the navigation must not ask the database who is logged in
    return render_template("error.html", code=503, title="The database is not available",
                           message="The dashboard cannot use its database right now, so nothing was saved or "
                                   "shown. Try again in a minute; if it keeps happening, tell an admin."), 503
