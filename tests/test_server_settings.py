"""The settings of the servers `make run` starts (masking/server_settings.py): HOST, PORT,
INTERNAL_API_PORT, WEB_CONCURRENCY, WEB_THREADS, WEB_TIMEOUT, SWEEP_INTERVAL_SECONDS.

Every bad value is refused with one line naming the variable, what it may be and the value
given, by the validator, by the launcher (``masking.web.serve.main``, before it starts anything)
and by gunicorn.conf.py (SystemExit(2), which gunicorn lets through without a traceback)."""
from __future__ import annotations

import runpy

import pytest

from masking.server_settings import LauncherSettings, ServerSettings, for_gunicorn, for_launcher
from masking.web import serve
from tests.conftest import ROOT

VARIABLES = ("HOST", "PORT", "INTERNAL_API_PORT", "WEB_CONCURRENCY", "WEB_THREADS", "WEB_TIMEOUT",
             "SWEEP_INTERVAL_SECONDS")

NOT_NUMBERS = ["abc", "-1", "+5", "1.5", "1e3", "0x10", "5 000", "٣", "²", "５"]  # the last three: not ASCII
REFUSALS = {
    "PORT": ("PORT must be a port number from 1 to 65535", NOT_NUMBERS + ["0", "65536", "99999999999"]),
    "INTERNAL_API_PORT": ("INTERNAL_API_PORT must be a port number from 1 to 65535",
                          NOT_NUMBERS + ["0", "65536", "99999999999"]),
    "WEB_CONCURRENCY": ("WEB_CONCURRENCY must be a whole number of gunicorn workers from 1 to 64",
                        NOT_NUMBERS + ["0", "65", "1000"]),
    "WEB_THREADS": ("WEB_THREADS must be a whole number of threads per worker from 1 to 256",
                    NOT_NUMBERS + ["0", "257"]),
    "WEB_TIMEOUT": ("WEB_TIMEOUT must be a whole number of seconds from 1 to 3600", NOT_NUMBERS + ["0", "3601"]),
    "SWEEP_INTERVAL_SECONDS": ("SWEEP_INTERVAL_SECONDS must be a whole number of seconds from 0 (never) to 604800",
                               NOT_NUMBERS + ["604801"]),
    "HOST": ("HOST must be a host name or an IP address to listen on", ["", "  ", "\t"]),
}
HOST_WITH_PORT = "HOST must be a host name or an IP address without a port (the port is PORT)"
BAD = [(name, bad) for name, (_, values) in REFUSALS.items() for bad in values]
GUNICORN_VARIABLES = ("HOST", "PORT", "WEB_CONCURRENCY", "WEB_THREADS", "WEB_TIMEOUT")


@pytest.fixture
def clean_env(monkeypatch):
    """None of the server settings inherited from the shell running the tests."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# ---------------------------------------------------------------- the validator

def test_the_defaults_are_the_documented_ones():
    assert for_launcher({}) == LauncherSettings(server=ServerSettings("127.0.0.1", 5000, 2, 16, 30),
                                                internal_port=5001, sweep_interval=600)
    assert for_gunicorn({}) == ServerSettings("127.0.0.1", 5000, 2, 16, 30)


def test_an_empty_number_is_its_default_and_surrounding_spaces_are_ignored():
    blank = {name: " " for name in VARIABLES if name != "HOST"}
    assert for_launcher(blank) == for_launcher({})
    settings = for_launcher({"HOST": " 0.0.0.0 ", "PORT": " 8000 ", "INTERNAL_API_PORT": "0009001",
                             "WEB_CONCURRENCY": "64", "WEB_THREADS": "256\n", "WEB_TIMEOUT": "3600",
                             "SWEEP_INTERVAL_SECONDS": "0"})
    assert settings == LauncherSettings(server=ServerSettings("0.0.0.0", 8000, 64, 256, 3600),
                                        internal_port=9001, sweep_interval=0)


@pytest.mark.parametrize("name, bad", BAD)
def test_a_bad_value_is_refused_with_its_name_range_and_value(name, bad):
    refusal, _ = REFUSALS[name]
    with pytest.raises(ValueError) as caught:
        for_launcher({name: bad})
    assert str(caught.value) == f"{refusal}, got {bad!r}"
    if name in GUNICORN_VARIABLES:  # gunicorn.conf.py refuses it the same way
        with pytest.raises(ValueError) as caught:
            for_gunicorn({name: bad})
        assert str(caught.value) == f"{refusal}, got {bad!r}"


@pytest.mark.parametrize("bad", ["127.0.0.1:8000", "localhost:5000", "example.org:", "[::1]:5000", "::g"])
def test_a_host_with_a_port_is_refused(bad):
    with pytest.raises(ValueError, match="^" + HOST_WITH_PORT.replace("(", r"\(").replace(")", r"\)")):
        for_gunicorn({"HOST": bad})


def test_a_long_value_is_cut_in_the_message():
    with pytest.raises(ValueError) as caught:
        for_gunicorn({"WEB_THREADS": "9" * 5000})  # also: no int() of 5000 digits (Python refuses those)
    assert str(caught.value) == ("WEB_THREADS must be a whole number of threads per worker from 1 to 256, "
                                 f"got {'9' * 40!r}... (5000 characters)")


def test_the_internal_port_must_fit_and_differ_from_port():
    with pytest.raises(ValueError) as caught:
        for_launcher({"PORT": "65535"})
    assert str(caught.value) == ("PORT must be a port number from 1 to 65534 when INTERNAL_API_PORT is not set "
                                 "(the internal API server takes PORT + 1), got '65535'")
    assert for_launcher({"PORT": "65535", "INTERNAL_API_PORT": "5001"}).internal_port == 5001
    assert for_launcher({"PORT": "65534"}).internal_port == 65535
    for same in ("5000", " 5000 ", "05000"):
        with pytest.raises(ValueError) as caught:
            for_launcher({"INTERNAL_API_PORT": same})
        assert str(caught.value) == ("INTERNAL_API_PORT must be a port number from 1 to 65535 other than PORT "
                                     f"(5000), got {same!r}")
    # gunicorn alone has no internal server: the launcher starts its internal one with PORT = INTERNAL_API_PORT
    assert for_gunicorn({"PORT": "65535", "INTERNAL_API_PORT": "65535"}).port == 65535


@pytest.mark.parametrize("host, bind, url", [
    ("127.0.0.1", "127.0.0.1:5000", "http://127.0.0.1:5000/"),
    ("example.org", "example.org:5000", "http://example.org:5000/"),
    ("0.0.0.0", "0.0.0.0:5000", "http://127.0.0.1:5000/"),
    ("::", "[::]:5000", "http://127.0.0.1:5000/"),
    ("::1", "[::1]:5000", "http://[::1]:5000/"),
    ("[::1]", "[::1]:5000", "http://[::1]:5000/"),
])
def test_bind_and_url_put_an_ipv6_address_in_brackets(host, bind, url):
    settings = for_gunicorn({"HOST": host})
    assert (settings.bind, settings.url) == (bind, url)


# ---------------------------------------------------------------- the launcher: refuses before it starts anything

@pytest.fixture
def nothing_starts(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("the launcher started something")

    monkeypatch.setattr(serve.subprocess, "Popen", refuse)
    monkeypatch.setattr(serve, "_load_app", refuse)


@pytest.mark.parametrize("name, bad", [(name, values[0]) for name, (_, values) in REFUSALS.items()]
                         + [("PORT", "65535"), ("INTERNAL_API_PORT", "5000")])
def test_the_launcher_refuses_a_bad_value_with_one_line(clean_env, nothing_starts, capsys, name, bad):
    clean_env.setenv(name, bad)
    assert serve.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"serve: {name} must be ")
    assert captured.err.endswith(f", got {bad!r}\n") and captured.err.count("\n") == 1


def test_check_only_checks(clean_env, nothing_starts, capsys):
    assert serve.main(["--check"]) == 0
    clean_env.setenv("WEB_TIMEOUT", "0")
    assert serve.main(["--check"]) == 2
    assert serve.main(["--verbose"]) == 2
    assert capsys.readouterr().err == ("serve: WEB_TIMEOUT must be a whole number of seconds from 1 to 3600, got '0'\n"
                                       "usage: python -m masking.web.serve [--check]\n")


# ---------------------------------------------------------------- gunicorn.conf.py

def _read_config():
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


@pytest.mark.parametrize("name", GUNICORN_VARIABLES)
def test_gunicorn_conf_stops_with_one_line_on_a_bad_value(clean_env, capsys, name):
    refusal, values = REFUSALS[name]
    clean_env.setenv(name, values[0])
    with pytest.raises(SystemExit) as stopped:
        _read_config()
    assert stopped.value.code == 2
    assert capsys.readouterr().err == f"gunicorn.conf.py: {refusal}, got {values[0]!r}\n"


def test_gunicorn_conf_takes_the_settings_from_the_environment(clean_env):
    for name, value in {"HOST": "::1", "PORT": "8123", "WEB_CONCURRENCY": "3", "WEB_THREADS": "4",
                        "WEB_TIMEOUT": "60"}.items():
        clean_env.setenv(name, value)
    config = _read_config()
    assert (config["bind"], config["workers"], config["threads"], config["timeout"]) == ("[::1]:8123", 3, 4, 60)
