"""masking/phone.py: numbers in, E.164 out. No app needed."""
import pytest

from masking.errors import MaskingError
from masking.phone import (
    MAX_INPUT_LENGTH,
    PhoneNumberError,
    international,
    normalise,
    normalise_field,
    redact,
    region_of,
)

ONE_NUMBER = "+919876543210"


@pytest.mark.parametrize("value", [
    "9876543210",            # national, default region
    "09876543210",           # national with trunk prefix
    "+91 98765 43210",       # international, spaced
    "+919876543210",
    "919876543210",          # country code without '+'
    "0091 98765 43210",      # 00 international prefix
    "00919876543210",
    "98765-43210",
    "(+91) 98765 43210",
    "+91-98765-43210",
    "  +91 98765 43210\n",   # surrounding whitespace
    9876543210,              # bare JSON number, as the vendor's examples send it
    919876543210,
])
def test_one_indian_number_in_many_notations(value):
    assert normalise(value, "IN") == ONE_NUMBER


def test_default_region_is_used_for_national_numbers_only():
    assert normalise("020 7946 0958", "GB") == "+442079460958"
    assert normalise("+44 20 7946 0958", "IN") == "+442079460958"
    assert normalise("00442079460958", "IN") == "+442079460958"
    assert normalise("9876543210", "in") == ONE_NUMBER  # region code in any case
    with pytest.raises(PhoneNumberError):
        normalise("9876543210", "GB")  # not a UK number


@pytest.mark.parametrize("value, reason", [
    (None, "must be a phone number"),
    (True, "must be a phone number"),
    (False, "must be a phone number"),
    (9876543210.0, "as a string or a whole number"),
    ({"number": "9876543210"}, "as a string or a whole number"),
    (["9876543210"], "as a string or a whole number"),
    ("", "is empty"),
    ("   ", "is empty"),
    ("9" * (MAX_INPUT_LENGTH + 1), "too long"),
    (10 ** MAX_INPUT_LENGTH, "too long"),
    ("abc", "is not a phone number"),
    ("+", "is not a phone number"),
    ("00", "is not a phone number"),
    ("12345", "is not a valid phone number"),
    ("+91 12345", "is not a valid phone number"),
    ("+919876543210abc", "is not a valid phone number"),
    ("+999 1234567", "is not"),
    ("9876543210 ext. 12", "must not have an extension"),
    ("+91 98765 43210 x12", "must not have an extension"),
    ("98 76 5A 43210", "has letters in it; type digits only"),  # the parser would drop the A
    ("1-800-FLOWERS", "has letters in it"),  # spelt as digits by the parser: not what was typed
])
def test_refusals_say_why(value, reason):
    with pytest.raises(PhoneNumberError) as caught:
        normalise(value, "IN")
    assert reason in str(caught.value)


def test_length_limit_is_inclusive():
    padded = "+91" + " " * (MAX_INPUT_LENGTH - 13) + "9876543210"
    assert len(padded) == MAX_INPUT_LENGTH
    assert normalise(padded, "IN") == ONE_NUMBER
    with pytest.raises(PhoneNumberError, match="too long"):
        normalise("+91" + " " * (MAX_INPUT_LENGTH - 12) + "9876543210", "IN")


@pytest.mark.parametrize("body, detail", [
    ({}, "m1 is required"),
    ({"m1": None}, "m1 is required"),
    ({"m1": ""}, "m1 is empty"),
    ({"m1": "12345"}, "m1 is not a valid phone number"),
    ({"m1": True}, "m1 must be a phone number"),
    ({"m1": 98765.5}, "m1 must be a phone number, as a string or a whole number"),
])
def test_normalise_field_refuses_with_1000_naming_the_field(body, detail):
    with pytest.raises(MaskingError) as caught:
        normalise_field(body, "m1", "IN")
    assert caught.value.code == 1000
    assert caught.value.detail == detail


def test_normalise_field_returns_e164():
    assert normalise_field({"m2": "09876543210"}, "m2", "IN") == ONE_NUMBER


def test_region_and_international_format():
    assert region_of(ONE_NUMBER) == "IN"
    assert region_of("+442079460958") == "GB"
    assert region_of("+16502530000") == "US"
    assert international(ONE_NUMBER) == "+91 98765 43210"


@pytest.mark.parametrize("number, shown", [
    ("+919876543210", "+91 98XXXXX210"),
    ("919876543210", "+91 98XXXXX210"),
    ("+442079460958", "+44 20XXXXX958"),
    ("+6512345678", "+65 12XXX678"),
    ("", ""),
    (None, ""),
    ("12", "XX"),
])
def test_redact_hides_the_middle(number, shown):
    assert redact(number) == shown


def test_redact_never_shows_the_whole_number():
    for number in ["+919876543210", "+918041234500", "+16502530000"]:
        hidden = redact(number)
        assert number[-10:] not in hidden.replace(" ", "")
        assert "X" in hidden
