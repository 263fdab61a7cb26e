"""The settings the app reads (masking/settings.py): every bad value is refused with one line
naming the variable, what it may be and the value given, by ``create_app`` (ConfigurationError,
a SettingsError; the ``flask`` command prints it as ``app: <message>`` and exits 2), by
``check_environment`` (the launcher's --check, gunicorn.conf.py) with the same message, and by
the entry points without a traceback. The servers' own settings: test_server_settings.py."""
from __future__ import annotations

import os
import runpy
import subprocess
import sys

import pytest

import app as app_module
from app import ENV_SETTINGS, ConfigurationError, create_app
from masking.settings import SettingsError, check_environment
from masking.web import serve
from tests.conftest import ROOT

SERVICE_SETTINGS = ("MASKING_API_URL", "MASKING_API_USER_ID", "MASKING_API_TOKEN", "INTERNAL_API_PORT", "PORT",
                    "MASKING_API_CONNECT_TIMEOUT", "MASKING_API_READ_TIMEOUT")
SERVER_SETTINGS = ("HOST", "WEB_CONCURRENCY", "WEB_THREADS", "WEB_TIMEOUT", "SWEEP_INTERVAL_SECONDS")
APP_SETTINGS = (*ENV_SETTINGS, *SERVICE_SETTINGS)

NOT_NUMBERS = ["abc", "-1", "+5", "1.5", "1e3", "0x10", "5 000", "٣", "５"]
BODY = "API_MAX_BODY_BYTES must be a whole number of bytes from 1024 to 16777216"
LEVEL = "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL (any case)"
IDLE = "SESSION_IDLE_MINUTES must be a whole number of minutes from 1 to 720"
URL = "MASKING_API_URL must be an http:// or https:// URL with a host, such as http://10.0.0.5:5000"
DB = "DATABASE_URL must be a SQLite or PostgreSQL URL (sqlite:///path/to/file.db, postgresql://user@host/db)"
PORT_65535 = ("PORT must be a port number from 1 to 65534 when INTERNAL_API_PORT is not set "
              "(the internal API server takes PORT + 1)")


def flag(name: str) -> str:
    return f"{name} must be true or false (or 1/0, yes/no, on/off)"


def seconds(name: str) -> str:
    return f"{name} must be a number of seconds above 0 and at most 300"


# variable: (what it may be, bad values); the message is "<what it may be>, got <value>". In the
# order create_app meets them (the masking rules: numbers read first, then the checks of the values).
REFUSALS = {
    "DATABASE_URL": (DB, ["bogus", "localhost/masking", "mysql://u@h/db", "sqlite:/x.db", "postgresql://u@h:port/db"]),
    "LOG_LEVEL": (LEVEL, ["bogus", "WARN", "FATAL", "10", "ınfo", "info debug"]),
    "API_ERROR_DETAIL": (flag("API_ERROR_DETAIL"), ["maybe", "flase", "2", "-1", "tru", "nein"]),
    "API_MAX_BODY_BYTES": (BODY, NOT_NUMBERS + ["0", "1023", "16777217", "64KiB"]),
    "API_RATE_LIMIT": ("API_RATE_LIMIT must be limits such as 30/second or 30/second;1000/hour (or off)",
                       ["fast", "30", "30/fortnight", "0/second", "30/second;banana", "-5/minute", "30 per"]),
    "API_RATE_LIMIT_STORAGE": ("API_RATE_LIMIT_STORAGE must be memory:// or a redis://HOST:PORT/DB URL",
                               ["memory", "ftp://host", "redis://", "postgresql://u@h/db", "127.0.0.1:6379"]),
    "COOLOFF_SECONDS": ("COOLOFF_SECONDS must be a whole number of seconds from 0 to 86400", ["abc", "-1", "1.5", "٣"]),
    "GEO_MATCH": ("GEO_MATCH must be one of prefer, require, off", ["bogus", "PREFER", "none"]),
    "TIMEZONE": ("TIMEZONE must be a known time zone such as Asia/Kolkata", ["Mars/Base", "../etc/passwd"]),
    "DEFAULT_REGION": ("DEFAULT_REGION must be a two-letter region code such as IN", ["XX", "India"]),
    "SESSION_IDLE_MINUTES": (IDLE, NOT_NUMBERS + ["0", "721"]),
    "SESSION_COOKIE_SECURE": (flag("SESSION_COOKIE_SECURE"), ["maybe", "ture", "y"]),
    "PORT": ("PORT must be a port number from 1 to 65535", NOT_NUMBERS + ["0", "65536"]),
    "INTERNAL_API_PORT": ("INTERNAL_API_PORT must be a port number from 1 to 65535", NOT_NUMBERS + ["0", "65536"]),
    "MASKING_API_URL": (URL, ["ftp://example.org", "127.0.0.1:5000", "localhost", "http://", "http:///api",
                              "http://host:abc", "http://host:99999", "http://host/?a=1", "http://host/#top",
                              "http://ho st/", "mailto:a@b.c"]),
    "MASKING_API_CONNECT_TIMEOUT": (seconds("MASKING_API_CONNECT_TIMEOUT"),
                                    ["x", "0", "0.0", "-1", "301", "nan", "inf", "1e3", "1,5", "٣", "2 s"]),
    "MASKING_API_READ_TIMEOUT": (seconds("MASKING_API_READ_TIMEOUT"), ["x", "0", "300.5", "nan", "-0.5"]),
}
BAD = [(name, bad) for name, (_, values) in REFUSALS.items() for bad in values]
# The masking rules' numbers: one out of range shows the number read (MaskingSettings holds ints),
# one that is no whole number the text given; the message is the same.
RANGE_REFUSALS = [
    ("COOLOFF_SECONDS", "86401", "COOLOFF_SECONDS must be a whole number of seconds from 0 to 86400, got 86401"),
    ("MAX_EXPIRY_MINUTES", "0", "MAX_EXPIRY_MINUTES must be a whole number of minutes, at least 1, got 0"),
    ("DEFAULT_EXPIRY_MINUTES", "43201",
     "DEFAULT_EXPIRY_MINUTES must be a whole number of minutes from 1 to MAX_EXPIRY_MINUTES (43200), got 43201"),
    ("SSID_TTL_SECONDS", "59", "SSID_TTL_SECONDS must be a whole number of seconds, at least 60, got 59"),
    ("SSID_TTL_SECONDS", "-60", "SSID_TTL_SECONDS must be a whole number of seconds, at least 60, got '-60'"),
    ("DEFAULT_EXPIRY_MINUTES", "1h",
     "DEFAULT_EXPIRY_MINUTES must be a whole number of minutes from 1 to MAX_EXPIRY_MINUTES, got '1h'"),
    ("PORT", "65535", f"{PORT_65535}, got '65535'"),
]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No app or server setting inherited from the shell; a database URL that is never connected to."""
    for name in (*APP_SETTINGS, *SERVER_SETTINGS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'settings.db'}")
    monkeypatch.setenv("SECRET_KEY", "settings-test")
    return monkeypatch


def refusal_of_create_app() -> str:
    with pytest.raises(ConfigurationError) as caught:
        create_app({"TESTING": True})
    assert isinstance(caught.value, SettingsError) and isinstance(caught.value, ValueError)
    assert caught.value.__suppress_context__  # no second traceback when one is shown (gunicorn's worker log)
    return str(caught.value)


def refusal_of_check_environment() -> str:
    with pytest.raises(SettingsError) as caught:
        check_environment(os.environ)
    return str(caught.value)


# ---------------------------------------------------------------- the values

@pytest.mark.parametrize("name, bad", BAD)
def test_a_bad_value_is_refused_with_its_name_what_it_may_be_and_the_value(clean_env, name, bad):
    clean_env.setenv(name, bad)
    expected = f"{REFUSALS[name][0]}, got {bad!r}"
    assert refusal_of_create_app() == expected
    assert refusal_of_check_environment() == expected
    assert "\n" not in expected


@pytest.mark.parametrize("name, bad, expected", RANGE_REFUSALS)
def test_a_number_out_of_range_is_refused(clean_env, name, bad, expected):
    clean_env.setenv(name, bad)
    assert refusal_of_create_app() == expected
    assert refusal_of_check_environment() == expected


DRIVER = ("DATABASE_URL must use the drivers the service ships with (sqlite:// is Python's sqlite3, "
          "postgresql:// is psycopg 3; no other +driver)")


@pytest.mark.parametrize("bad", ["postgresql+psycopg2://u@h/db", "postgresql+asyncpg://u@h/db",
                                 "postgresql+nosuchdriver://u@h/db", "sqlite+pysqlcipher:///x.db",
                                 "sqlite+aiosqlite:///x.db"])
def test_a_driver_the_service_does_not_use_is_refused_before_any_connection(clean_env, bad):
    """masking/driver.py talks to sqlite3 and psycopg 3 directly; another driver (even an installed
    one) would fail only at the first query, with a traceback."""
    clean_env.setenv("DATABASE_URL", bad)
    assert refusal_of_create_app() == refusal_of_check_environment() == f"{DRIVER}, got {bad!r}"
    clean_env.setenv("DATABASE_URL", "postgresql+psycopg://u:hunter2@h/db")  # the driver written out is fine
    check_environment(os.environ)
    clean_env.setenv("DATABASE_URL", "postgresql+psycopg2://u:hunter2@h/db")
    assert refusal_of_check_environment() == f"{DRIVER}, got 'postgresql+psycopg2://u:***@h/db'"


def test_a_long_value_is_cut_and_a_password_is_not_shown(clean_env):
    clean_env.setenv("API_MAX_BODY_BYTES", "9" * 5000)  # also: no int() of 5000 digits
    assert refusal_of_create_app() == f"{BODY}, got {'9' * 40!r}... (5000 characters)"
    clean_env.delenv("API_MAX_BODY_BYTES")
    clean_env.setenv("DATABASE_URL", "postgresql://u:s3/cr@t@db:port/m")
    assert refusal_of_create_app() == f"{DB}, got 'postgresql://u:***@db:port/m'"
    clean_env.setenv("DATABASE_URL", "sqlite:///ok.db")
    clean_env.setenv("MASKING_API_URL", "ftp://user:hunter2@example.org")
    assert refusal_of_create_app() == f"{URL}, got 'ftp://user:***@example.org'"


def test_create_app_and_check_environment_refuse_the_same_setting_first(clean_env):
    """check_environment meets the settings in create_app's order: the same one is reported."""
    firsts = [(name, REFUSALS[name][1][0]) for name in REFUSALS if name != "INTERNAL_API_PORT"]
    for name, bad in firsts:
        clean_env.setenv(name, bad)
    for name, bad in firsts:
        assert refusal_of_create_app() == refusal_of_check_environment() == f"{REFUSALS[name][0]}, got {bad!r}"
        clean_env.delenv(name)
    check_environment(os.environ)


def test_every_setting_the_app_reads_is_checked():
    unchecked = {"SECRET_KEY", "MASKING_API_USER_ID", "MASKING_API_TOKEN",  # any text
                 "MAX_EXPIRY_MINUTES", "DEFAULT_EXPIRY_MINUTES", "SSID_TTL_SECONDS"}  # in RANGE_REFUSALS
    assert set(APP_SETTINGS) - unchecked == set(REFUSALS)


GOOD = [  # variable, value, config key, value in app.config
    ("API_MAX_BODY_BYTES", "1024", "API_MAX_BODY_BYTES", 1024),
    ("API_MAX_BODY_BYTES", " 16777216 ", "API_MAX_BODY_BYTES", 16777216),
    ("API_MAX_BODY_BYTES", "0065536", "API_MAX_BODY_BYTES", 65536),
    ("API_MAX_BODY_BYTES", "  ", "API_MAX_BODY_BYTES", 65536),
    ("LOG_LEVEL", "debug", "LOG_LEVEL", "DEBUG"),
    ("LOG_LEVEL", " Warning ", "LOG_LEVEL", "WARNING"),
    ("LOG_LEVEL", "CRITICAL", "LOG_LEVEL", "CRITICAL"),
    ("LOG_LEVEL", "", "LOG_LEVEL", "INFO"),
    *[("API_ERROR_DETAIL", value, "API_ERROR_DETAIL", True) for value in ("true", "TRUE", "1", "yes", "On ")],
    *[("API_ERROR_DETAIL", value, "API_ERROR_DETAIL", False) for value in ("false", "False", "0", "no", " OFF")],
    ("SESSION_IDLE_MINUTES", "1", "SESSION_IDLE_MINUTES", 1),
    ("SESSION_IDLE_MINUTES", "720", "SESSION_IDLE_MINUTES", 720),
    ("SESSION_COOKIE_SECURE", "true", "SESSION_COOKIE_SECURE", True),  # was ignored from the environment
    ("SESSION_COOKIE_SECURE", "off", "SESSION_COOKIE_SECURE", False),
    ("PORT", "8000", "MASKING_API_URL", "http://127.0.0.1:8001"),
    ("PORT", "1", "INTERNAL_API_PORT", 2),
    ("PORT", "65534", "INTERNAL_API_PORT", 65535),
    ("INTERNAL_API_PORT", "65535", "MASKING_API_URL", "http://127.0.0.1:65535"),
    ("INTERNAL_API_PORT", " 1 ", "INTERNAL_API_PORT", 1),
    ("MASKING_API_URL", "http://10.0.0.5:5000", "MASKING_API_URL", "http://10.0.0.5:5000"),
    ("MASKING_API_URL", " https://masking.example.org/base/ ", "MASKING_API_URL", "https://masking.example.org/base/"),
    ("MASKING_API_URL", "HTTP://[::1]:8000", "MASKING_API_URL", "HTTP://[::1]:8000"),
    ("MASKING_API_CONNECT_TIMEOUT", "0.001", "MASKING_API_CONNECT_TIMEOUT", 0.001),
    ("MASKING_API_CONNECT_TIMEOUT", "300", "MASKING_API_CONNECT_TIMEOUT", 300.0),
    ("MASKING_API_READ_TIMEOUT", ".5", "MASKING_API_READ_TIMEOUT", 0.5),
    ("MASKING_API_READ_TIMEOUT", "2.", "MASKING_API_READ_TIMEOUT", 2.0),
    ("DATABASE_URL", "sqlite://", "SQLALCHEMY_DATABASE_URI", "sqlite://"),
    ("DATABASE_URL", "postgres://u@h/db", "SQLALCHEMY_DATABASE_URI", "postgresql+psycopg://u@h/db"),
    ("DATABASE_URL", "sqlite+pysqlite:///x.db", "SQLALCHEMY_DATABASE_URI", "sqlite+pysqlite:///x.db"),
    ("DATABASE_URL", "postgresql://u:p@h:5432/db", "SQLALCHEMY_DATABASE_URI", "postgresql+psycopg://u:p@h:5432/db"),
    ("GEO_MATCH", " off ", None, None),
    ("COOLOFF_SECONDS", "0", None, None),
    ("COOLOFF_SECONDS", "86400", None, None),
]


@pytest.mark.parametrize("name, value, key, expected", GOOD)
def test_a_good_value_is_taken(clean_env, name, value, key, expected):
    clean_env.setenv(name, value)
    if name == "MASKING_API_URL":  # another service: the dashboard's account there is required
        clean_env.setenv("MASKING_API_USER_ID", "u1")
        clean_env.setenv("MASKING_API_TOKEN", "t1")
    check_environment(os.environ)
    application = create_app({"TESTING": True})
    if key is not None:
        assert application.config[key] == expected


def test_the_defaults(clean_env):
    check_environment(os.environ)
    config = create_app({"TESTING": True}).config
    assert (config["LOG_LEVEL"], config["API_ERROR_DETAIL"], config["API_MAX_BODY_BYTES"]) == ("INFO", True, 65536)
    assert (config["SESSION_IDLE_MINUTES"], config["SESSION_COOKIE_SECURE"]) == (30, False)
    assert (config["MASKING_API_URL"], config["MASKING_API_SELF"], config["INTERNAL_API_PORT"]) == \
        ("http://127.0.0.1:5001", True, 5001)
    assert (config["MASKING_API_CONNECT_TIMEOUT"], config["MASKING_API_READ_TIMEOUT"]) == (2.0, 5.0)


def test_values_given_to_create_app_may_be_numbers_and_flags(clean_env):
    config = create_app({"TESTING": True, "API_MAX_BODY_BYTES": 2048, "API_ERROR_DETAIL": False,
                         "SESSION_IDLE_MINUTES": 5, "SESSION_COOKIE_SECURE": True, "INTERNAL_API_PORT": 9001,
                         "MASKING_API_READ_TIMEOUT": 0.25, "COOLOFF_SECONDS": 0}).config
    assert (config["API_MAX_BODY_BYTES"], config["API_ERROR_DETAIL"], config["SESSION_IDLE_MINUTES"]) == \
        (2048, False, 5)
    assert (config["SESSION_COOKIE_SECURE"], config["MASKING_API_URL"], config["MASKING_API_READ_TIMEOUT"]) == \
        (True, "http://127.0.0.1:9001", 0.25)
    for bad in ({"API_MAX_BODY_BYTES": 1.5}, {"API_MAX_BODY_BYTES": True}, {"INTERNAL_API_PORT": 0},
                {"MASKING_API_READ_TIMEOUT": float("nan")}, {"COOLOFF_SECONDS": -1}):
        with pytest.raises(ConfigurationError):
            create_app({"TESTING": True, **bad})


def test_port_65535_is_fine_when_the_dashboard_calls_another_service(clean_env):
    clean_env.setenv("PORT", "65535")
    clean_env.setenv("MASKING_API_URL", "http://10.0.0.5:5000")
    clean_env.setenv("MASKING_API_USER_ID", "u1")
    clean_env.setenv("MASKING_API_TOKEN", "t1")
    config = create_app({"TESTING": True}).config
    assert (config["MASKING_API_URL"], config["MASKING_API_SELF"], config["INTERNAL_API_PORT"]) == \
        ("http://10.0.0.5:5000", False, None)


CREDENTIALS = "MASKING_API_USER_ID and MASKING_API_TOKEN"


@pytest.mark.parametrize("settings, expected", [
    ({"MASKING_API_URL": "http://10.0.0.5:5000"},
     f"{CREDENTIALS} must be set when MASKING_API_URL names another service: the dashboard's API account there"),
    ({"MASKING_API_URL": "http://10.0.0.5:5000", "MASKING_API_USER_ID": "u1", "MASKING_API_TOKEN": "  "},
     f"{CREDENTIALS} go together: MASKING_API_USER_ID is set, MASKING_API_TOKEN is not"),
    ({"MASKING_API_TOKEN": "t1"}, f"{CREDENTIALS} go together: MASKING_API_TOKEN is set, MASKING_API_USER_ID is not"),
])
def test_the_dashboards_credentials_are_checked_at_start(clean_env, settings, expected):
    """Before, an app pointed at another service without them served, and told every agent at
    every mask that the dashboard was not set up."""
    for name, value in settings.items():
        clean_env.setenv(name, value)
    assert refusal_of_create_app() == expected
    assert refusal_of_check_environment() == expected


def test_credentials_for_this_apps_own_api_are_taken(clean_env):
    clean_env.setenv("MASKING_API_USER_ID", "u1")
    clean_env.setenv("MASKING_API_TOKEN", "t1")
    config = create_app({"TESTING": True}).config
    assert (config["MASKING_API_SELF"], config["MASKING_API_USER_ID"]) == (True, "u1")


# ---------------------------------------------------------------- the entry points: one line, no traceback

def _env(**settings: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in (*APP_SETTINGS, *SERVER_SETTINGS)}
    return {**env, "SECRET_KEY": "settings-test", **settings}


def _flask(tmp_path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    """The real ``flask --app app`` command, over a database file that a refusal never creates."""
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT,
                          env=_env(DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", **settings),
                          capture_output=True, text=True, timeout=120)


def _assert_refused(done: subprocess.CompletedProcess, expected: str) -> None:
    assert "Traceback" not in done.stdout + done.stderr
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"app: {expected}\n")


# --help loads the app too (to list its commands): Flask prints a traceback for any exception there.
@pytest.mark.parametrize("command", [["--help"], ["db", "current"], ["db", "upgrade"], ["pool", "list"],
                                     ["api-user", "list"], ["users", "--help"], ["sweep"]])
def test_the_flask_command_prints_one_error_line(tmp_path, command):
    _assert_refused(_flask(tmp_path, *command, GEO_MATCH="bogus"),
                    "GEO_MATCH must be one of prefer, require, off, got 'bogus'")
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("name, bad, expected", [
    ("DEFAULT_REGION", "XX", "DEFAULT_REGION must be a two-letter region code such as IN, got 'XX'"),
    ("MAX_EXPIRY_MINUTES", "abc", "MAX_EXPIRY_MINUTES must be a whole number of minutes, at least 1, got 'abc'"),
    ("COOLOFF_SECONDS", "-1", "COOLOFF_SECONDS must be a whole number of seconds from 0 to 86400, got '-1'"),
    ("COOLOFF_SECONDS", "86401", "COOLOFF_SECONDS must be a whole number of seconds from 0 to 86400, got 86401"),
    ("LOG_LEVEL", "loud", f"{LEVEL}, got 'loud'"),
])
def test_flask_help_names_the_bad_setting(tmp_path, name, bad, expected):
    _assert_refused(_flask(tmp_path, "--help", **{name: bad}), expected)


def test_flask_help_lists_the_apps_commands_when_the_settings_are_good(tmp_path):
    done = _flask(tmp_path, "--help")
    assert (done.returncode, done.stderr) == (0, "")
    listed = {line.split()[0] for line in done.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert {"api-user", "db", "pool", "sweep", "users", "routes", "run", "shell"} <= listed


@pytest.fixture
def nothing_starts(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("the launcher started something")

    monkeypatch.setattr(serve.subprocess, "Popen", refuse)
    return refuse


@pytest.mark.parametrize("name, bad", [(name, values[0]) for name, (_, values) in REFUSALS.items()])
@pytest.mark.parametrize("args", [[], ["--check"]])
def test_the_launcher_refuses_a_bad_app_setting_before_it_starts_anything(clean_env, nothing_starts, capsys,
                                                                          name, bad, args):
    clean_env.setattr(serve, "_load_app", nothing_starts)
    clean_env.setenv(name, bad)
    assert serve.main(args) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"serve: {REFUSALS[name][0]}, got {bad!r}\n")


def test_a_setting_only_create_app_refuses_stops_the_launcher_too(clean_env, nothing_starts, capsys):
    clean_env.setattr(serve, "check_environment", lambda _environ: None)  # as if it missed one
    clean_env.setenv("LOG_LEVEL", "loud")
    assert serve.main([]) == 2
    assert capsys.readouterr().err == f"serve: {LEVEL}, got 'loud'\n"


def test_an_app_that_fails_for_another_reason_does_not_stop_the_launcher(monkeypatch, capsys):
    def broken():
        raise RuntimeError("could not translate host name (password=secret)")

    monkeypatch.setattr(app_module, "create_app", broken)
    assert serve._load_app() is None  # the launch goes on: the servers report it themselves
    assert capsys.readouterr().err == ("serve: could not load the app (RuntimeError): no first-run check, "
                                       "no sweeping\n")


def test_gunicorn_conf_refuses_a_bad_app_setting_with_one_line(clean_env, capsys):
    clean_env.setenv("API_MAX_BODY_BYTES", "abc")  # gunicorn_compat reads it, in the master
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert stopped.value.code == 2
    assert capsys.readouterr().err == f"gunicorn.conf.py: {BODY}, got 'abc'\n"


def test_gunicorn_conf_gives_gunicorn_the_checked_log_level(clean_env):
    clean_env.setenv("LOG_LEVEL", " Debug ")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["loglevel"] == "debug"
