"""The settings of the servers ``make run`` starts, checked: HOST, PORT, INTERNAL_API_PORT,
WEB_CONCURRENCY, WEB_THREADS, WEB_TIMEOUT and SWEEP_INTERVAL_SECONDS.

Plain Python (no Flask): gunicorn.conf.py reads ``for_gunicorn`` in every gunicorn master, and
the launcher (``masking.web.serve``) checks ``for_launcher`` before it starts anything. A value
that cannot be used raises SettingsError (a ValueError; ``masking.settings`` raises it too for
the app's settings) with one line naming the variable, what it may be, and the value given.

Numbers are ASCII digits only ('+5', '٣', '1.5', '1e3' are refused), with surrounding spaces
ignored; an empty value counts as unset (the default). HOST must not be empty.
"""
from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

class SettingsError(ValueError):
    """A setting from the environment cannot be used; the message names it."""


MAX_PORT = 65535
WORKERS = (1, 64)  # WEB_CONCURRENCY: gunicorn worker processes
THREADS = (1, 256)  # WEB_THREADS: threads per worker
TIMEOUT = (1, 3600)  # WEB_TIMEOUT: seconds
MAX_SWEEP_INTERVAL = 7 * 86400  # SWEEP_INTERVAL_SECONDS: a week (0: never)
_SHOWN = 40  # characters of a refused value repeated in the message


def shown(raw: str | None) -> str:
    """A refused value for a message: its repr, cut after a few dozen characters."""
    if raw is not None and len(raw) > _SHOWN:
        return f"{raw[:_SHOWN]!r}... ({len(raw)} characters)"
    return repr(raw)


def _digits(raw: str | None, default: int) -> int | None:
    """The whole number ``raw`` spells in ASCII digits (``default`` when unset or blank), else None."""
    text = (raw or "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 20:  # 20: no huge int() for a huge value
        return None
    return int(text)


def whole_number(raw: str | None, default: int, low: int, high: int, refusal: str) -> int:
    """``raw`` as a whole number from ``low`` to ``high``; else SettingsError: ``refusal``, then the value given."""
    value = _digits(raw, default)
    if value is None or not low <= value <= high:
        raise SettingsError(f"{refusal}, got {shown(raw)}")
    return value


def port(name: str, raw: str | None, default: int) -> int:
    return whole_number(raw, default, 1, MAX_PORT, f"{name} must be a port number from 1 to {MAX_PORT}")


def host(raw: str | None) -> str:
    """HOST: a name or an IP address (IPv6 with or without brackets), not empty and without a port."""
    text = "127.0.0.1" if raw is None else raw.strip()
    if not text:
        raise SettingsError(f"HOST must be a host name or an IP address to listen on, got {shown(raw)}")
    if ":" in text:  # an IPv6 address, or a name or IPv4 address followed by a port
        try:
            ipaddress.IPv6Address(text[1:-1] if text.startswith("[") and text.endswith("]") else text)
        except ValueError:
            raise SettingsError(f"HOST must be a host name or an IP address without a port (the port is PORT), "
                                f"got {shown(raw)}") from None
    return text


def sweep_interval(raw: str | None) -> int:
    """SWEEP_INTERVAL_SECONDS: whole seconds up to a week, 0 for never. SettingsError with the reason otherwise."""
    return whole_number(raw, 600, 0, MAX_SWEEP_INTERVAL, "SWEEP_INTERVAL_SECONDS must be a whole number of "
                        f"seconds from 0 (never) to {MAX_SWEEP_INTERVAL}")


@dataclass(frozen=True)
class ServerSettings:
    """What gunicorn.conf.py gives one gunicorn master."""

    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 2
    threads: int = 16
    timeout: int = 30

    @property
    def _ipv6(self) -> bool:
        return ":" in self.host and not self.host.startswith("[")

    @property
    def bind(self) -> str:
        """gunicorn's ``bind``: HOST:PORT, an IPv6 address in brackets."""
        return f"[{self.host}]:{self.port}" if self._ipv6 else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Where a browser on this machine finds the server (an any-address host shown as 127.0.0.1)."""
        if self.host in ("0.0.0.0", "::", "[::]"):
            return f"http://127.0.0.1:{self.port}/"
        return f"http://{self.bind}/"


@dataclass(frozen=True)
class LauncherSettings:
    """What ``python -m masking.web.serve`` needs: the public server's settings, the internal
    API server's port (it shares the public server's workers, threads and timeout) and the sweep."""

    server: ServerSettings
    internal_port: int
    sweep_interval: int


def for_gunicorn(environ: Mapping[str, str] = os.environ) -> ServerSettings:
    """The settings of one gunicorn master from ``environ``; SettingsError for the first bad one."""
    return ServerSettings(
        host=host(environ.get("HOST")),
        port=port("PORT", environ.get("PORT"), 5000),
        workers=whole_number(environ.get("WEB_CONCURRENCY"), 2, *WORKERS,
                             f"WEB_CONCURRENCY must be a whole number of gunicorn workers from {WORKERS[0]} "
                             f"to {WORKERS[1]}"),
        threads=whole_number(environ.get("WEB_THREADS"), 16, *THREADS,
                             f"WEB_THREADS must be a whole number of threads per worker from {THREADS[0]} "
                             f"to {THREADS[1]}"),
        timeout=whole_number(environ.get("WEB_TIMEOUT"), 30, *TIMEOUT,
                             f"WEB_TIMEOUT must be a whole number of seconds from {TIMEOUT[0]} to {TIMEOUT[1]}"),
    )


def no_room_for_internal_port(raw_port: str | None) -> str:
    """The refusal of PORT 65535 when the internal API server would take PORT + 1."""
    return (f"PORT must be a port number from 1 to {MAX_PORT - 1} when INTERNAL_API_PORT is not set "
            f"(the internal API server takes PORT + 1), got {shown(raw_port)}")


def for_launcher(environ: Mapping[str, str] = os.environ) -> LauncherSettings:
    """Everything the launcher and its two gunicorn masters read; SettingsError for the first bad one."""
    server = for_gunicorn(environ)
    raw_internal = environ.get("INTERNAL_API_PORT")
    if not (raw_internal or "").strip() and server.port == MAX_PORT:
        raise SettingsError(no_room_for_internal_port(environ.get("PORT")))
    internal = port("INTERNAL_API_PORT", raw_internal, server.port + 1)
    if internal == server.port:
        raise SettingsError(f"INTERNAL_API_PORT must be a port number from 1 to {MAX_PORT} other than PORT "
                         f"({server.port}), got {shown(raw_internal)}")
    return LauncherSettings(server=server, internal_port=internal,
                            sweep_interval=sweep_interval(environ.get("SWEEP_INTERVAL_SECONDS")))
