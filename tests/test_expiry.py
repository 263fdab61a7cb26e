"""masking/expiry.py: expiry_duration and expiry_time into one instant. No app needed."""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from masking.errors import MaskingError
from masking.expiry import END_NOW, parse_duration, parse_instant, resolve_expiry

KOLKATA = ZoneInfo("Asia/Kolkata")
NOW = datetime(2030, 1, 1, 6, 30, 0, 250000)  # naive UTC, with a fraction of a second
WHOLE_NOW = NOW.replace(microsecond=0)
MAX = 43200


def refused(code, func, *args, **kwargs) -> str:
    with pytest.raises(MaskingError) as caught:
        func(*args, **kwargs)
    assert caught.value.code == code, caught.value
    return caught.value.detail or ""


def resolve(body, now=NOW, **kwargs):
    options = {"zone": KOLKATA, "default_minutes": 60, "max_minutes": MAX, **kwargs}
    return resolve_expiry(body, now, **options)


# ---------------------------------------------------------------- expiry_duration

@pytest.mark.parametrize("raw, minutes", [
    (1, 1), (1440, 1440), ("1440", 1440), (" 30 ", 30), ("+5", 5), ("-1", -1), (-1, -1), (0, 0), ("0", 0),
])
def test_duration_whole_minutes(raw, minutes):
    assert parse_duration(raw) == minutes


@pytest.mark.parametrize("raw, said", [
    (1.5, "fraction 1.5"),
    (1440.0, "fraction 1440.0"),
    (True, "boolean"),
    (False, "boolean"),
    ("abc", "'abc'"),
    ("ten", "'ten'"),
    ("", "''"),
    ("   ", "whole number"),
    ("1.5", "'1.5'"),
    ("1e3", "'1e3'"),
    ("1 440", "whole number"),
    ({"minutes": 5}, "an object"),
    ([5], "a list"),
    (None, "whole number"),
])
def test_duration_refusals_are_1502(raw, said):
    assert said in refused(1502, parse_duration, raw)


# ---------------------------------------------------------------- expiry_time

@pytest.mark.parametrize("raw, utc", [
    ("2030-01-01T12:00:00+05:30", datetime(2030, 1, 1, 6, 30)),
    ("2030-01-01T06:30:00Z", datetime(2030, 1, 1, 6, 30)),
    ("2030-01-01T06:30:00z", datetime(2030, 1, 1, 6, 30)),
    ("2030-01-01T06:30:00+00:00", datetime(2030, 1, 1, 6, 30)),
    ("2030-01-01T01:30:00-05:00", datetime(2030, 1, 1, 6, 30)),
    # Naive local forms are in the configured zone (Asia/Kolkata, UTC+05:30).
    ("2030-01-01 12:00:00", datetime(2030, 1, 1, 6, 30)),
    ("2030-01-01T12:00:00", datetime(2030, 1, 1, 6, 30)),
    ("2030-01-01 12:00", datetime(2030, 1, 1, 6, 30)),
    (" 2030-01-01 12:00:00 ", datetime(2030, 1, 1, 6, 30)),
    # Unix seconds, as a number or a string.
    (1893479400, datetime(2030, 1, 1, 6, 30)),
    ("1893479400", datetime(2030, 1, 1, 6, 30)),
    (0, datetime(1970, 1, 1)),
])
def test_instant_forms(raw, utc):
    assert parse_instant(raw, KOLKATA) == utc


def test_local_form_follows_the_configured_zone():
    assert parse_instant("2030-01-01 12:00:00", ZoneInfo("UTC")) == datetime(2030, 1, 1, 12, 0)
    assert parse_instant("2030-07-01 12:00:00", ZoneInfo("Europe/London")) == datetime(2030, 7, 1, 11, 0)


@pytest.mark.parametrize("raw, said", [
    (1893479400000, "milliseconds"),      # JavaScript's Date.now(), 13 digits
    ("1893479400000", "milliseconds"),
    (189347940000, "milliseconds"),
    (-5, "negative"),
    ("", "empty"),
    ("  ", "empty"),
    ("tomorrow", "'tomorrow'"),
    ("2030-13-01 10:00:00", "is not ISO 8601"),
    ("01/01/2030 10:00", "is not ISO 8601"),
    (True, "Unix seconds"),
    (1893479400.5, "Unix seconds"),
    ({"at": "2030-01-01"}, "Unix seconds"),
    (["2030-01-01T00:00:00Z"], "Unix seconds"),
])
def test_instant_refusals_are_1507(raw, said):
    assert said in refused(1507, parse_instant, raw, KOLKATA)


def test_instant_refusal_code_and_field_are_the_callers():
    detail = refused(1000, parse_instant, "soon", KOLKATA, "created_from", 1000)
    assert detail.startswith("created_from")


# ---------------------------------------------------------------- resolve_expiry

def test_default_duration_when_neither_field_is_given():
    assert resolve({}) == WHOLE_NOW + timedelta(minutes=60)


def test_duration_counts_from_the_whole_second():
    assert resolve({"expiry_duration": 10}) == WHOLE_NOW + timedelta(minutes=10)
    assert resolve({"expiry_duration": "1440"}) == WHOLE_NOW + timedelta(minutes=1440)


@pytest.mark.parametrize("duration", [0, -1, "-1", "0", -10 ** 9])
def test_set_refuses_zero_and_negative_durations(duration):
    assert "at least 1 minute" in refused(1502, resolve, {"expiry_duration": duration})


def test_duration_maximum_is_inclusive():
    assert resolve({"expiry_duration": MAX}) == WHOLE_NOW + timedelta(minutes=MAX)
    assert f"at most {MAX}" in refused(1502, resolve, {"expiry_duration": MAX + 1})
    assert f"at most {MAX}" in refused(1502, resolve, {"expiry_duration": 10 ** 30})


@pytest.mark.parametrize("duration", [-1, 0, "-1", "-99999"])
def test_unset_non_positive_duration_means_end_now(duration):
    assert resolve({"expiry_duration": duration}, default_minutes=None, allow_end=True) == END_NOW


def test_unset_without_expiry_fields_means_end_now():
    assert resolve({}, default_minutes=None, allow_end=True) == END_NOW


def test_unset_positive_duration_is_a_new_expiry_within_the_maximum():
    assert resolve({"expiry_duration": 5}, default_minutes=None, allow_end=True) == WHOLE_NOW + timedelta(minutes=5)
    refused(1502, resolve, {"expiry_duration": MAX + 1}, default_minutes=None, allow_end=True)


def test_expiry_time_wins_over_duration():
    assert resolve({"expiry_duration": 10, "expiry_time": "2030-01-01T08:00:00Z"}) == datetime(2030, 1, 1, 8, 0)
    # Even for unset, where the duration alone would end the masking.
    assert resolve({"expiry_duration": -1, "expiry_time": "2030-01-01T08:00:00Z"},
                   default_minutes=None, allow_end=True) == datetime(2030, 1, 1, 8, 0)


def test_both_given_each_must_be_valid():
    refused(1502, resolve, {"expiry_duration": "soon", "expiry_time": "2030-01-01T08:00:00Z"})
    refused(1507, resolve, {"expiry_duration": 10, "expiry_time": "soon"})


def test_expiry_time_must_be_in_the_future():
    now = datetime(2030, 1, 1, 6, 30)
    assert "future" in refused(1507, resolve, {"expiry_time": "2030-01-01T06:30:00Z"}, now=now)
    assert "future" in refused(1507, resolve, {"expiry_time": "2029-12-31T06:30:00Z"}, now=now)
    assert "future" in refused(1507, resolve, {"expiry_time": 1000}, now=now)
    assert resolve({"expiry_time": "2030-01-01T06:30:01Z"}, now=now) == datetime(2030, 1, 1, 6, 30, 1)


def test_expiry_time_maximum_is_inclusive():
    now = datetime(2030, 1, 1, 6, 30)
    latest = now + timedelta(minutes=MAX)
    assert resolve({"expiry_time": latest.isoformat() + "Z"}, now=now) == latest
    detail = refused(1507, resolve, {"expiry_time": (latest + timedelta(seconds=1)).isoformat() + "Z"}, now=now)
    assert f"at most {MAX} minutes" in detail


def test_expiry_time_is_whole_seconds_so_the_reported_instant_is_the_enforced_one():
    moment = resolve({"expiry_time": "2030-01-01T07:00:00.750+00:00"})
    assert moment == datetime(2030, 1, 1, 7, 0, 0)
    assert moment.microsecond == 0


def test_results_are_naive_utc():
    moment = resolve({"expiry_time": "2030-01-01T12:00:00+05:30"}, now=datetime(2030, 1, 1))
    assert moment.tzinfo is None
    assert moment == datetime(2030, 1, 1, 12, 0, tzinfo=KOLKATA).astimezone(timezone.utc).replace(tzinfo=None)
