"""How the dashboard reaches the masking service: over HTTP only, through ``MaskingClient``.

Settings (environment or app config):

* ``MASKING_API_URL``: the service's base URL. Unset (the default): this app's own API on
  the internal server ``http://127.0.0.1:INTERNAL_API_PORT`` that ``make run`` starts beside
  the public one (see ``masking.web.serve``), so the dashboard never waits on the threads
  that serve it.
* ``MASKING_API_USER_ID`` / ``MASKING_API_TOKEN``: its credentials. Required when
  ``MASKING_API_URL`` is set. With the default URL and no credentials the app uses a
  built-in API account, ``userId`` = ``dashboard``, whose token is derived from
  ``SECRET_KEY`` (HMAC): every worker and both servers agree on it without sharing a file,
  it is created in the database on first use (a unique index settles races between
  workers), and it follows a change of ``SECRET_KEY``. An admin who revokes it stops the
  dashboard (agents are told to contact an admin); clearing ``revoked_at`` brings it back.
* ``MASKING_API_CONNECT_TIMEOUT`` (2 s) / ``MASKING_API_READ_TIMEOUT`` (5 s): an agent
  hears about a slow or absent service within seconds.

They are checked by ``masking.settings.ServiceSettings``: a bad one stops ``create_app``.

``call(method, ...)`` returns the data, or raises ``ServiceProblem`` carrying an
``explain.Problem`` (error code, unreachable, timeout, ...).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import threading

import requests
from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from masking import accounts, explain
from masking.db import write_transaction
from masking.client import MaskingAPIError, MaskingClient, MaskingUnavailable
from masking.models import ApiAccount
from masking.settings import ServiceSettings
from masking.web.extensions import db, now

log = logging.getLogger("masking.dashboard")

BUILTIN_USER_ID = accounts.DASHBOARD_USER_ID
BUILTIN_NAME = "Dashboard (built in)"


class ServiceProblem(Exception):
    def __init__(self, problem: explain.Problem):
        super().__init__(f"{problem.kind} {problem.code or ''} {problem.detail or problem.message}".strip())
        self.problem = problem


def configure(app: Flask) -> None:
    """Check and fill in the service settings (config given to create_app wins over the environment;
    PORT comes from the environment). SettingsError for a bad one."""
    for key in ("MASKING_API_URL", "MASKING_API_USER_ID", "MASKING_API_TOKEN", "INTERNAL_API_PORT",
                "MASKING_API_CONNECT_TIMEOUT", "MASKING_API_READ_TIMEOUT"):
        if not app.config.get(key) and os.environ.get(key):
            app.config[key] = os.environ[key]
    service = ServiceSettings.from_mapping(app.config, os.environ.get("PORT"))
    app.config.update(MASKING_API_URL=service.url, MASKING_API_SELF=service.is_self,
                      INTERNAL_API_PORT=service.internal_api_port,
                      MASKING_API_CONNECT_TIMEOUT=service.connect_timeout,
                      MASKING_API_READ_TIMEOUT=service.read_timeout)
    app.extensions["dashboard_service"] = _Connection()


class _Connection:
    """Per-app state: one MaskingClient (and keep-alive HTTP session) per thread."""

    def __init__(self):
        self.local = threading.local()
        self.builtin_ready = False
        self.lock = threading.Lock()


def builtin_token(secret_key: str) -> str:
    mac = hmac.new(secret_key.encode("utf-8"), b"masking dashboard api token v1", hashlib.sha256).digest()
    return "mtk_" + base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def ensure_builtin_account(force: bool = False) -> tuple[str, str]:
    """Create (or re-key) the built-in API account in this app's database; returns (userId, token)."""
    state: _Connection = current_app.extensions["dashboard_service"]
    token = builtin_token(current_app.config["SECRET_KEY"])
    if state.builtin_ready and not force:
        return BUILTIN_USER_ID, token
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    with state.lock:
        session = db.session()
        try:
            with write_transaction(session):
                account = session.scalar(select(ApiAccount).where(ApiAccount.user_id == BUILTIN_USER_ID))
                if account is None:
                    session.add(ApiAccount(user_id=BUILTIN_USER_ID, name=BUILTIN_NAME, token_hash=digest,
                                           can_write=True, created_at=now()))
                    log.info("creating the dashboard's built-in API account %r", BUILTIN_USER_ID)
                elif account.revoked_at is None and account.token_hash != digest:
                    account.token_hash = digest  # SECRET_KEY changed
        except IntegrityError:
            pass  # another worker created it first: same token, nothing to do
        state.builtin_ready = True
    return BUILTIN_USER_ID, token


def dashboard_user_ids() -> set[str]:
    """The userIds of the API accounts the dashboard masks through: the built-in one, and the
    configured one. Their maskings are the dashboard's (made by an agent, not an integrator)."""
    configured = current_app.config.get("MASKING_API_USER_ID")
    return {BUILTIN_USER_ID, *([configured] if configured else [])}


def _credentials() -> tuple[str, str] | None:
    config = current_app.config
    if config.get("MASKING_API_USER_ID") and config.get("MASKING_API_TOKEN"):
        return config["MASKING_API_USER_ID"], config["MASKING_API_TOKEN"]
    if config["MASKING_API_SELF"]:
        return ensure_builtin_account()
    return None


def client() -> MaskingClient:
    config = current_app.config
    credentials = _credentials()
    if credentials is None:
        raise ServiceProblem(explain.Problem(explain.MISCONFIGURED, detail="MASKING_API_USER_ID/TOKEN not set"))
    local = current_app.extensions["dashboard_service"].local
    key = (config["MASKING_API_URL"], credentials)
    if getattr(local, "key", None) != key:
        local.client = MaskingClient(config["MASKING_API_URL"], user_id=credentials[0], token=credentials[1],
                                     timeout=(config["MASKING_API_CONNECT_TIMEOUT"], config["MASKING_API_READ_TIMEOUT"]))
        local.key = key
    return local.client


def call(method: str, *args, **kwargs):
    """``MaskingClient.<method>(...)``; failures become ServiceProblem. No database transaction is
    held open while waiting on the network."""
    db.session.commit()  # end this request's read transaction (expire_on_commit is off)
    for attempt in (1, 2):
        try:
            return getattr(client(), method)(*args, **kwargs)
        except MaskingAPIError as exc:
            if exc.code == 1014 and attempt == 1 and current_app.config["MASKING_API_SELF"] \
                    and not current_app.config.get("MASKING_API_USER_ID"):
                ensure_builtin_account(force=True)  # database reset or SECRET_KEY changed: re-key, retry once
                continue
            raise ServiceProblem(explain.Problem(explain.SERVICE_ERROR, exc.code, exc.message, exc.detail,
                                                 exc.data if isinstance(exc.data, dict) else None)) from None
        except MaskingUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, requests.Timeout) and not isinstance(cause, requests.ConnectTimeout):
                kind = explain.TIMEOUT
            elif isinstance(cause, requests.RequestException):
                kind = explain.UNREACHABLE
            else:
                kind = explain.GARBLED
            log.warning("masking service problem (%s): %s", kind, exc)
            raise ServiceProblem(explain.Problem(kind, detail=str(exc))) from None
