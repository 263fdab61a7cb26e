"""Phone numbers in, E.164 out, with the ``phonenumbers`` library.

The same validator serves the API and the dashboard's inline checks.
"""
from __future__ import annotations

import phonenumbers

from .errors import INVALID_PARAMETERS, MaskingError

MAX_INPUT_LENGTH = 40


class PhoneNumberError(ValueError):
    """Why a value is not a usable phone number, in words an agent understands."""


def normalise(value, default_region: str) -> str:
    """Return ``value`` as E.164 ('+919876543210') or raise PhoneNumberError.

    Accepts strings in any common notation and bare integers (the vendor's examples send
    m1 and m2 as JSON numbers). A national number takes ``default_region``.
    """
    if isinstance(value, bool) or value is None:
        raise PhoneNumberError("must be a phone number")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise PhoneNumberError("must be a phone number, as a string or a whole number")
    text = value.strip()
    if not text:
        raise PhoneNumberError("is empty")
    if len(text) > MAX_INPUT_LENGTH:
        raise PhoneNumberError("is too long to be a phone number")
    if text.startswith("00"):  # international prefix used in much of the world
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, default_region.upper())
    except phonenumbers.NumberParseException:
        raise PhoneNumberError("is not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise PhoneNumberError("is not a valid phone number")
    if parsed.extension:  # a call cannot be routed to an extension; don't drop it silently
        raise PhoneNumberError("must not have an extension")
    if any(ch.isalpha() for ch in text):  # the parser drops a stray letter (or spells a word as digits): a typo
        raise PhoneNumberError("has letters in it; type digits only")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def ascii_digits(text) -> str:
    """The decimal digits of ``text``, of any script, as ASCII: '+91 ٩٨٧-65' -> '9198765'."""
    return "".join(str(int(ch)) for ch in str(text) if ch.isdecimal())


def normalise_field(body: dict, field: str, default_region: str) -> str:
    """normalise() for an API field: a refusal becomes 1000 naming the field."""
    try:
        return normalise(body.get(field), default_region)
    except PhoneNumberError as exc:
        if body.get(field) is None:
            raise MaskingError(INVALID_PARAMETERS, f"{field} is required") from None
        raise MaskingError(INVALID_PARAMETERS, f"{field} {exc}") from None


def _split_e164(e164: str) -> tuple[int, str] | None:
    """'+919876543210' -> (91, '9876543210') by the country-code table, without a full parse."""
    if not e164.startswith("+") or not e164[1:].isdigit():
        return None
    for length in (1, 2, 3):
        code = int(e164[1:1 + length])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code, e164[1 + length:]
    return None


def region_of(e164: str) -> str | None:
    """ISO region of an E.164 number ('+919876543210' -> 'IN')."""
    split = _split_e164(e164)
    if split is not None:
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[split[0]]
        if len(regions) == 1:  # most country codes: no need to parse (this runs on every set)
            return regions[0] if regions[0] != phonenumbers.UNKNOWN_REGION else None
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164))


def international(e164: str) -> str:
    """'+919876543210' -> '+91 98765 43210', for people to read."""
    return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def redact(number: str | None) -> str:
    """Hide the middle of a number for logs and lists: '+919876543210' -> '+91 98XXXXX210'.

    Keeps the country code, two leading and three trailing digits of the national number;
    shorter numbers keep less. Anything unparsable is hidden almost entirely.
    """
    if not number:
        return ""
    text = str(number)
    split = _split_e164(text)  # E.164, as stored and logged: no parse needed
    if split is not None:
        national, prefix = split[1], f"+{split[0]} "
    else:
        try:
            parsed = phonenumbers.parse(text if text.startswith("+") else "+" + text.lstrip("0"))
            national = str(parsed.national_number)
            prefix = f"+{parsed.country_code} "
        except phonenumbers.NumberParseException:
            digits = "".join(ch for ch in text if ch.isdigit())
            return ("X" * max(len(digits) - 2, 1)) + digits[-2:] if len(digits) > 2 else "X" * len(digits)
    keep_head, keep_tail = (2, 3) if len(national) >= 8 else (1, 2)
    if len(national) <= keep_head + keep_tail:
        return prefix + "X" * len(national)
    hidden = len(national) - keep_head - keep_tail
    return prefix + national[:keep_head] + "X" * hidden + national[-keep_tail:]
