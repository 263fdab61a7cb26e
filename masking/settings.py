"""Every setting the service reads, with its default, in one place, checked.

Plain Python (no Flask): the app factory copies these into ``app.config`` and the
masking rules receive the few values they need as arguments.

A value that cannot be used raises ``SettingsError`` (a ValueError) with one line naming
the variable, what it may be and the value given (cut when long; a password in a URL is
hidden). An empty value counts as unset (the default); numbers are ASCII digits, surrounding
spaces ignored. ``create_app`` checks every setting it reads with these functions (the
servers' own settings are in ``masking.server_settings``); ``check_environment`` runs the
same checks on the environment without building the app (``python -m masking.web.serve
--check``, gunicorn.conf.py).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from masking import server_settings
from masking.server_settings import MAX_PORT, SettingsError, shown


DEFAULT_MAX_BODY_BYTES = 65536
BODY_BYTES = (1024, 16 * 1024 * 1024)  # API_MAX_BODY_BYTES: 1 KiB to 16 MiB
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
IDLE_MINUTES = (1, 720)  # SESSION_IDLE_MINUTES: a dashboard session ends after 12 hours whatever the activity
MAX_SERVICE_TIMEOUT = 300  # MASKING_API_CONNECT_TIMEOUT / MASKING_API_READ_TIMEOUT: seconds
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_DECIMAL = re.compile(r"\d+(?:\.\d*)?|\.\d+", re.ASCII)
_PASSWORD = re.compile(r"(://[^/@:]*:).*@", re.S)  # scheme://user:PASSWORD@host: up to the last @


def _text(raw) -> str | None:
    """A setting as text: app.config may hold a number or a flag (create_app's test_config)."""
    return raw if raw is None or isinstance(raw, str) else str(raw)


def _blank(raw) -> bool:
    return raw is None or not _text(raw).strip()


def _whole_number(name: str, raw, default: int, low: int, high: int, unit: str) -> int:
    return server_settings.whole_number(_text(raw), default, low, high,
                                        f"{name} must be a whole number of {unit} from {low} to {high}")


def _port(name: str, raw, default: int) -> int:
    return server_settings.port(name, _text(raw), default)


def flag(name: str, raw, default: bool) -> bool:
    """true/false, also 1/0, yes/no, on/off, any case; a typo is refused rather than read as either."""
    if isinstance(raw, bool):
        return raw
    if _blank(raw):
        return default
    text = _text(raw).strip().lower()
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise SettingsError(f"{name} must be true or false (or 1/0, yes/no, on/off), got {shown(_text(raw))}")


def log_level(raw) -> str:
    """LOG_LEVEL: DEBUG, INFO, WARNING, ERROR or CRITICAL in any case (INFO when unset); upper case."""
    if _blank(raw):
        return "INFO"
    text = _text(raw).strip()
    if not (text.isascii() and text.upper() in LOG_LEVELS):  # isascii: 'ınfo'.upper() is 'INFO'
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} (any case), got {shown(_text(raw))}")
    return text.upper()


def max_body_bytes(raw) -> int:
    """API_MAX_BODY_BYTES: the largest request body the API reads (also gunicorn_compat's limit)."""
    return _whole_number("API_MAX_BODY_BYTES", raw, DEFAULT_MAX_BODY_BYTES, *BODY_BYTES, "bytes")


RATE_LIMIT_OFF = ("off", "none", "0")
RATE_LIMIT_STORES = ("memory", "redis", "rediss")


def api_rate_limit(raw) -> tuple:
    """API_RATE_LIMIT: limits in the ``limits`` library's notation (``30/second``, ``30/second;1000/hour``),
    shortest window first; () when unset or ``off`` (the default: no limit)."""
    if _blank(raw) or _text(raw).strip().lower() in RATE_LIMIT_OFF:
        return ()
    from limits import parse_many  # local: keeps this module cheap to import

    text = _text(raw).strip()
    try:
        items = parse_many(text)
    except ValueError:
        items = []
    if not items or any(item.amount < 1 for item in items):
        raise SettingsError("API_RATE_LIMIT must be limits such as 30/second or 30/second;1000/hour "
                            f"(or off), got {shown(text)}")
    return tuple(sorted(items, key=lambda item: item.get_expiry()))


def api_rate_limit_storage(raw) -> str:
    """API_RATE_LIMIT_STORAGE: memory:// (the default: counts per worker process) or a redis:// URL."""
    if _blank(raw):
        return "memory://"
    text = _text(raw).strip()
    scheme, separator, rest = text.partition("://")
    if not separator or scheme.lower() not in RATE_LIMIT_STORES or (scheme.lower() != "memory" and not rest):
        raise SettingsError("API_RATE_LIMIT_STORAGE must be memory:// or a redis://HOST:PORT/DB URL, "
                            f"got {shown(_without_password(text))}")
    return text


def session_idle_minutes(raw) -> int:
    return _whole_number("SESSION_IDLE_MINUTES", raw, 30, *IDLE_MINUTES, "minutes")


def _without_password(text: str) -> str:
    return _PASSWORD.sub(r"\1***@", text)


# (backend, driver) pairs as SQLAlchemy names them: the defaults we ship, and psycopg written out.
SUPPORTED_DRIVERS = {("sqlite", "pysqlite"), ("postgresql", "psycopg")}


def database_url(raw) -> str:
    """DATABASE_URL as SQLAlchemy takes it (``postgres://`` and ``postgresql://`` become psycopg 3):
    a SQLite or PostgreSQL URL SQLAlchemy can parse. Nothing is connected."""
    from sqlalchemy.engine import make_url  # local: keeps this module cheap to import
    from sqlalchemy.exc import ArgumentError

    from masking.db import normalise_database_url

    text = (_text(raw) or "").strip()
    try:
        url = make_url(normalise_database_url(text)) if text else None
    except (ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        url = None
    backend = url.get_backend_name() if url is not None else None
    if backend not in ("sqlite", "postgresql"):
        raise SettingsError("DATABASE_URL must be a SQLite or PostgreSQL URL (sqlite:///path/to/file.db, "
                            f"postgresql://user@host/db), got {shown(_without_password(text) if text else _text(raw))}")
    # masking/driver.py talks to these two drivers directly; any other would fail only at the first query.
    if (backend, url.get_driver_name()) not in SUPPORTED_DRIVERS:
        raise SettingsError("DATABASE_URL must use the drivers the service ships with (sqlite:// is Python's sqlite3, postgresql:// "
                            f"is psycopg 3; no other +driver), got {shown(_without_password(text))}")
    return normalise_database_url(text)


def service_url(raw) -> str:
    """MASKING_API_URL (when set): an http or https URL with a host, no query or fragment."""
    text = _text(raw).strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number or out of range)
        usable = (parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and not parts.query
                  and not parts.fragment and not any(char.isspace() for char in text))
    except ValueError:
        usable = False
    if not usable:
        raise SettingsError("MASKING_API_URL must be an http:// or https:// URL with a host, such as "
                            f"http://10.0.0.5:5000, got {shown(_without_password(text))}")
    return text


def seconds(name: str, raw, default: float) -> float:
    """A timeout: a number of seconds above 0 and at most MAX_SERVICE_TIMEOUT (decimals allowed)."""
    if _blank(raw):
        return float(default)
    text = _text(raw).strip()
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    elif _DECIMAL.fullmatch(text) and len(text) <= 20:
        value = float(text)
    else:
        value = None
    if value is None or not 0 < value <= MAX_SERVICE_TIMEOUT:  # also refuses nan
        raise SettingsError(f"{name} must be a number of seconds above 0 and at most {MAX_SERVICE_TIMEOUT}, "
                            f"got {shown(_text(raw))}")
    return value


# What each whole-number setting of MaskingSettings may be, as __post_init__ checks it: one
# message whether the value is not a number or out of range.
_RANGES = {"default_expiry_minutes": "of minutes from 1 to MAX_EXPIRY_MINUTES",
           "max_expiry_minutes": "of minutes, at least 1",
           "cooloff_seconds": "of seconds from 0 to 86400",
           "ssid_ttl_seconds": "of seconds, at least 60"}


def _out_of_range(field: str, value: int, limit: str = "") -> SettingsError:
    return SettingsError(f"{field.upper()} must be a whole number {_RANGES[field]}{limit}, got {value}")


@dataclass(frozen=True)
class MaskingSettings:
    """The knobs of the masking rules. Environment variable = field name in upper case."""

    default_region: str = "IN"  # region for national numbers without a country code
    timezone: str = "Asia/Kolkata"  # zone of naive "YYYY-MM-DD HH:MM:SS" expiry times
    default_expiry_minutes: int = 60  # when a set call gives neither expiry field
    max_expiry_minutes: int = 43200  # 30 days
    cooloff_seconds: int = 300  # a party does not get back a number its masking just left
    geo_match: str = "prefer"  # prefer | require | off: pool number of m1's country
    ssid_ttl_seconds: int = 86400  # lifetime of an ssid from Auth/login

    def __post_init__(self):
        if self.geo_match not in ("prefer", "require", "off"):
            raise SettingsError(f"GEO_MATCH must be one of prefer, require, off, got {shown(self.geo_match)}")
        if not 0 <= self.cooloff_seconds <= 86400:
            raise _out_of_range("cooloff_seconds", self.cooloff_seconds)
        if self.max_expiry_minutes < 1:
            raise _out_of_range("max_expiry_minutes", self.max_expiry_minutes)
        if not 1 <= self.default_expiry_minutes <= self.max_expiry_minutes:
            raise _out_of_range("default_expiry_minutes", self.default_expiry_minutes, f" ({self.max_expiry_minutes})")
        if self.ssid_ttl_seconds < 60:
            raise _out_of_range("ssid_ttl_seconds", self.ssid_ttl_seconds)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingsError(f"TIMEZONE must be a known time zone such as Asia/Kolkata, "
                                f"got {shown(self.timezone)}") from exc
        import phonenumbers  # local: keeps this module cheap to import

        if self.default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise SettingsError(f"DEFAULT_REGION must be a two-letter region code such as IN, "
                                f"got {shown(self.default_region)}")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_mapping(cls, values) -> "MaskingSettings":
        """Build from a mapping keyed by upper-case names (os.environ or app.config)."""
        kwargs = {}
        for field in fields(cls):
            raw = values.get(field.name.upper())
            if _blank(raw):
                continue
            if field.type == "int":
                # The range in the message too: "-1" is a whole number to the reader.
                kwargs[field.name] = server_settings.whole_number(
                    _text(raw), 0, 0, 10 ** 20, f"{field.name.upper()} must be a whole number {_RANGES[field.name]}")
            else:
                kwargs[field.name] = str(raw).strip()
        return cls(**kwargs)

    @classmethod
    def from_env(cls) -> "MaskingSettings":
        return cls.from_mapping(os.environ)


def _check_credentials(values: Mapping, is_self: bool) -> None:
    """MASKING_API_USER_ID and MASKING_API_TOKEN come together; another service (MASKING_API_URL)
    needs them, as it has no built-in account for the dashboard. Refused at start, not at an
    agent's first mask."""
    given = [name for name in ("MASKING_API_USER_ID", "MASKING_API_TOKEN") if not _blank(values.get(name))]
    if len(given) == 1:
        missing = "MASKING_API_TOKEN" if given == ["MASKING_API_USER_ID"] else "MASKING_API_USER_ID"
        raise SettingsError(f"MASKING_API_USER_ID and MASKING_API_TOKEN go together: {given[0]} is set, "
                            f"{missing} is not")
    if not given and not is_self:
        raise SettingsError("MASKING_API_USER_ID and MASKING_API_TOKEN must be set when MASKING_API_URL names "
                            "another service: the dashboard's API account there")


@dataclass(frozen=True)
class ServiceSettings:
    """How the dashboard reaches the masking service (``masking.web.service_client``)."""

    url: str  # MASKING_API_URL, or this app's internal server http://127.0.0.1:INTERNAL_API_PORT
    is_self: bool  # MASKING_API_URL unset: the service is this app, on the internal server
    internal_api_port: int | None  # INTERNAL_API_PORT, else PORT + 1 (None: PORT is 65535, not needed)
    connect_timeout: float = 2.0
    read_timeout: float = 5.0

    @classmethod
    def from_mapping(cls, values: Mapping, port_value=None) -> "ServiceSettings":
        """From MASKING_API_URL, INTERNAL_API_PORT and the timeouts in ``values``; ``port_value``: PORT
        (the environment's: the launcher gives the internal server PORT = INTERNAL_API_PORT)."""
        is_self = _blank(values.get("MASKING_API_URL"))
        internal = values.get("INTERNAL_API_PORT")
        if not _blank(internal):
            internal_port = _port("INTERNAL_API_PORT", internal, 0)
        else:
            public = _port("PORT", port_value, 5000)
            internal_port = public + 1 if public < MAX_PORT else None
            if internal_port is None and is_self:
                raise SettingsError(server_settings.no_room_for_internal_port(_text(port_value)))
        url = f"http://127.0.0.1:{internal_port}" if is_self else service_url(values["MASKING_API_URL"])
        _check_credentials(values, is_self)
        return cls(
            url=url,
            is_self=is_self,
            internal_api_port=internal_port,
            connect_timeout=seconds("MASKING_API_CONNECT_TIMEOUT", values.get("MASKING_API_CONNECT_TIMEOUT"), 2),
            read_timeout=seconds("MASKING_API_READ_TIMEOUT", values.get("MASKING_API_READ_TIMEOUT"), 5),
        )


def check_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Every setting ``create_app`` reads, checked in ``environ`` as it checks them (same order, same
    messages) but without building the app: SettingsError for the first bad one."""
    if not _blank(environ.get("DATABASE_URL")):
        database_url(environ["DATABASE_URL"])
    log_level(environ.get("LOG_LEVEL"))
    flag("API_ERROR_DETAIL", environ.get("API_ERROR_DETAIL"), True)
    max_body_bytes(environ.get("API_MAX_BODY_BYTES"))
    api_rate_limit(environ.get("API_RATE_LIMIT"))
    api_rate_limit_storage(environ.get("API_RATE_LIMIT_STORAGE"))
    MaskingSettings.from_mapping(environ)
    session_idle_minutes(environ.get("SESSION_IDLE_MINUTES"))
    flag("SESSION_COOKIE_SECURE", environ.get("SESSION_COOKIE_SECURE"), False)
    ServiceSettings.from_mapping(environ, environ.get("PORT"))
