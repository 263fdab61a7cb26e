"""The application factory and entry point.

    flask --app app db upgrade      # migrate the database
    gunicorn -c gunicorn.conf.py    # serve it (what `make run` does)
"""
from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import ScriptInfo

from masking import settings
from masking.clock import utcnow
from masking.db import configure_engine, engine_options
from masking.rate_limit import AccountRateLimit
from masking.settings import MaskingSettings, SettingsError
from masking.web.api import PATH_PREFIX as API_PATH_PREFIX
from masking.web.extensions import db, migrate

# Settings read from the environment (defaults in masking/settings.py and below). The dashboard's
# service settings (MASKING_API_*, INTERNAL_API_PORT, PORT) are read by masking.web.service_client.
ENV_SETTINGS = ("DATABASE_URL", "SECRET_KEY", "LOG_LEVEL", "API_ERROR_DETAIL", "API_MAX_BODY_BYTES",
                "API_RATE_LIMIT", "API_RATE_LIMIT_STORAGE",
                "SESSION_IDLE_MINUTES", "SESSION_COOKIE_SECURE",
                *(field.name.upper() for field in dataclasses.fields(MaskingSettings)))


class ConfigurationError(SettingsError):
    """A setting create_app cannot use (a SettingsError, so a ValueError)."""


def create_app(test_config: dict | None = None) -> Flask:
    """The app. Every setting it reads is checked first (``masking.settings``): a bad one raises
    ConfigurationError with one line naming the variable, what it may be and the value given.
    When the ``flask`` command loads the app, that line goes to stderr as ``app: <message>`` and
    the command exits with status 2 (as gunicorn.conf.py does)."""
    try:
        return _create_app(test_config)
    except SettingsError as exc:
        if test_config is None and _loaded_by_flask_command():
            # Not an exception: while loading the app for --help, Flask's CLI prints the traceback
            # of any Exception (FlaskGroup.list_commands); SystemExit goes through.
            print(f"app: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        raise ConfigurationError(str(exc)) from None


def _loaded_by_flask_command() -> bool:
    """Whether the ``flask`` command (its ScriptInfo) is what calls create_app."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.find_object(ScriptInfo) is not None


def _create_app(test_config: dict | None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(
        DATABASE_URL=f"sqlite:///{Path(app.instance_path) / 'masking.db'}",
        LOG_LEVEL="INFO",
        API_ERROR_DETAIL="true",
        API_MAX_BODY_BYTES=settings.DEFAULT_MAX_BODY_BYTES,
    )
    app.config.update({key: os.environ[key] for key in ENV_SETTINGS if os.environ.get(key, "").strip()})
    if test_config:
        app.config.update(test_config)

    # Checked in the order of masking.settings.check_environment, before anything is built.
    url = settings.database_url(app.config["DATABASE_URL"])
    app.config["LOG_LEVEL"] = settings.log_level(app.config["LOG_LEVEL"])
    app.config["API_ERROR_DETAIL"] = settings.flag("API_ERROR_DETAIL", app.config["API_ERROR_DETAIL"], True)
    app.config["API_MAX_BODY_BYTES"] = settings.max_body_bytes(app.config["API_MAX_BODY_BYTES"])
    app.extensions["api_rate_limit"] = AccountRateLimit(settings.api_rate_limit(app.config.get("API_RATE_LIMIT")),
                                                        settings.api_rate_limit_storage(
                                                            app.config.get("API_RATE_LIMIT_STORAGE")))
    app.extensions["masking_settings"] = MaskingSettings.from_mapping(app.config)
    app.extensions["masking_clock"] = app.config.get("CLOCK") or utcnow  # tests pass a controllable clock

    app.config.setdefault("SECRET_KEY", None)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret(Path(app.instance_path) / "secret_key")

    app.config["SQLALCHEMY_DATABASE_URI"] = url
    # hide_parameters: database errors in logs never carry the phone numbers bound to a query.
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**engine_options(url), "hide_parameters": True}
    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    with app.app_context():
        configure_engine(db.engine)

    _configure_logging(app.config["LOG_LEVEL"])
    app.wsgi_app = CaseInsensitiveApiPrefix(app.wsgi_app)

    from masking.web import api, cli, dashboard, health

    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    dashboard.init_app(app)  # login, CSRF, security headers, the dashboard's blueprints
    cli.register(app)
    return app


def _configure_logging(level: str) -> None:
    """The ``masking`` loggers write to stderr (gunicorn's error log) unless the host app set them up."""
    logger = logging.getLogger("masking")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


class CaseInsensitiveApiPrefix:
    """'/API/V2/...' reaches the same routes as '/api/v2/...' (the endpoint part is matched
    case-insensitively by the API's dispatch table)."""

    PREFIX = API_PATH_PREFIX

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path[: len(self.PREFIX)].lower() == self.PREFIX and not path.startswith(self.PREFIX):
            environ["PATH_INFO"] = self.PREFIX + path[len(self.PREFIX):]
        return self.wsgi_app(environ, start_response)


def _instance_secret(path: Path) -> str:
    """A secret kept in the instance folder, so sessions survive restarts on a laptop.

    Production sets SECRET_KEY; this is the zero-configuration default of `make run`.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    # Write aside, then link into place: two workers starting at once agree on one secret.
    secret = secrets.token_hex(32)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    try:
        os.link(temporary, path)
    except FileExistsError:
        secret = path.read_text().strip()
    finally:
        temporary.unlink()
    return secret
