"""Logging in and out, roles on every route, the idle timeout, the login rate limit.

* ``role_required(*roles)``: logged out -> the login page (``HX-Redirect`` for htmx, with
  ``next`` = the page the user was on); logged in with another role -> 403.
* ``passive``: marks a background view (polling) that does not count as activity.
* Idle timeout: ``SESSION_IDLE_MINUTES`` without a non-passive request ends the session
  (``end_idle_session``; the CSRF check runs before it, so ``dashboard._csrf_failed`` calls it too).
* Login rate limit: ``masking.users.LOGIN_MAX_FAILURES`` failures per username and address
  within ``LOGIN_WINDOW`` block further tries; kept in the database, so every worker sees it.
* ``next`` after login is followed only when it is a path on this site.
"""
from __future__ import annotations

import functools
from datetime import datetime
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, abort, current_app, flash, g, redirect, request, session, url_for
from flask_login import LoginManager, current_user, login_user, logout_user

from masking import users
from masking.db import write_transaction
from masking.web.extensions import db, now
from masking.web.htmx import current_path, is_htmx, redirect_to, render

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.session_protection = "basic"

SEEN_KEY = "_seen"  # last activity, seconds since the epoch by the app's clock
SEEN_GRANULARITY = 30  # seconds: refresh the cookie at most this often
_EPOCH = datetime(1970, 1, 1)
FIRST_RUN_COMMAND = "flask --app app users create USERNAME --role admin"


@login_manager.user_loader
def _load_user(session_id: str):
    return users.load_session_user(db.session(), session_id)


def login_url(next_path: str | None = None) -> str:
    url = url_for("auth.login")
    if next_path and safe_next(next_path) and next_path not in ("/", url):
        url += "?" + urlencode({"next": next_path})
    return url


@login_manager.unauthorized_handler
def _unauthorized():
    if getattr(g, "session_expired", False):
        flash("Your session ended after a while without activity. Please log in again.", "info")
    if is_htmx():
        # Never swap a login page into a fragment: send the whole page to the login form.
        return redirect_to(login_url(current_path()), status=401)
    next_path = current_path() if request.method == "GET" else request.referrer and _path_of(request.referrer)
    return redirect(login_url(next_path))


def _path_of(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.netloc and parts.netloc != request.host:
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site ('/x?y'), else None (no open redirect)."""
    if not target or not isinstance(target, str) or len(target) > 2000:
        return None
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def role_required(*roles: str):
    """Allow the view to logged-in users with one of ``roles`` only."""
    unknown = set(roles) - set(users.ROLES)
    if not roles or unknown:
        raise ValueError(f"role_required needs roles among {users.ROLES}, got {roles}")

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        wrapper.allowed_roles = tuple(roles)
        return wrapper

    return decorate


def passive(view):
    """A background request (polling): it does not keep an idle session alive."""
    view.passive = True
    return view


def _seconds_now() -> int:
    return int((now() - _EPOCH).total_seconds())


def end_idle_session() -> bool:
    """Log the user out when the session has been idle longer than ``SESSION_IDLE_MINUTES``
    (the login page then says why). True when it did."""
    if not current_user.is_authenticated:
        return False
    seen = session.get(SEEN_KEY)
    if isinstance(seen, int) and _seconds_now() - seen > current_app.config["SESSION_IDLE_MINUTES"] * 60:
        logout_user()
        session.clear()
        g.session_expired = True
        return True
    return False


@bp.before_app_request
def _idle_timeout():
    if request.blueprint == "api" or request.endpoint in (None, "static"):
        return
    if not current_user.is_authenticated or end_idle_session():
        return
    stamp = _seconds_now()
    seen = session.get(SEEN_KEY)
    view = current_app.view_functions.get(request.endpoint)
    if getattr(view, "passive", False):
        return
    if not isinstance(seen, int) or stamp - seen >= SEEN_GRANULARITY:
        session[SEEN_KEY] = stamp


def _client_ip() -> str:
    return (request.remote_addr or "unknown")[:45]


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_path = safe_next(request.values.get("next"))
    if current_user.is_authenticated:
        return redirect_to(next_path or url_for("agent.index"))
    first_run = users.count(db.session()) == 0
    context = {"first_run": first_run, "first_run_command": FIRST_RUN_COMMAND, "next_path": next_path,
               "username": "", "error": None}
    if request.method == "GET":
        return render("auth/login.html", **context)

    username = (request.form.get("username") or "").strip()[:64]
    password = request.form.get("password") or ""
    context["username"] = username
    ip = _client_ip()
    moment = now()
    wait = users.login_blocked_for(db.session(), username, ip, moment)
    if wait:
        minutes = max(1, round(wait / 60))
        context["error"] = (f"Too many failed attempts. Wait {minutes} minute{'s' if minutes > 1 else ''} "
                            "before trying again, or ask an admin to reset your password.")
        db.session.rollback()
        return render("auth/login.html", status=429, **context)
    user = users.authenticate(db.session(), username, password) if username and password else None
    # Reads above, writes below under the write lock (SQLite would refuse to upgrade a read transaction).
    with write_transaction(db.session()):
        if user is None:
            if username:
                users.record_login_failure(db.session(), username, ip, moment)
        else:
            users.note_login(db.session(), user, password, ip, moment)
    if user is None:
        context["error"] = "Wrong username or password, or the account is disabled."
        return render("auth/login.html", status=200, **context)
    session.clear()  # no state carried over from before the login (session fixation)
    login_user(user)
    session[SEEN_KEY] = _seconds_now()
    return redirect_to(next_path or url_for("agent.index"))


def stale_login_form():
    """A login form sent with a stale CSRF token (the page was left open while another tab logged
    in or out; see ``dashboard._csrf_failed``): nobody is logged in by it. A user logged in
    meanwhile goes on to ``next``; anyone else gets a fresh login form, told why."""
    next_path = safe_next(request.values.get("next"))
    if current_user.is_authenticated:
        return redirect_to(next_path or url_for("agent.index"))
    flash("The login page was out of date, so you were not logged in. Please log in again.", "info")
    return redirect_to(login_url(next_path))


@bp.post("/logout")
def logout():
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect_to(url_for("auth.login"))
