"""Every setting the service reads, with its default, in one place.

Plain Python (no Flask): the app factory copies these into ``app.config`` and the
masking rules receive the few values they need as arguments.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class SettingsError(ValueError):
    """A setting from the environment cannot be used; the message names it."""


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
            raise SettingsError("GEO_MATCH must be one of prefer, require, off")
        if not 0 <= self.cooloff_seconds <= 86400:
            raise SettingsError("COOLOFF_SECONDS must be between 0 and 86400")
        if self.max_expiry_minutes < 1:
            raise SettingsError("MAX_EXPIRY_MINUTES must be at least 1")
        if not 1 <= self.default_expiry_minutes <= self.max_expiry_minutes:
            raise SettingsError("DEFAULT_EXPIRY_MINUTES must be between 1 and MAX_EXPIRY_MINUTES")
        if self.ssid_ttl_seconds < 60:
            raise SettingsError("SSID_TTL_SECONDS must be at least 60")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingsError(f"TIMEZONE {self.timezone!r} is not a known time zone") from exc
        import phonenumbers  # local: keeps this module cheap to import

        if self.default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise SettingsError(f"DEFAULT_REGION {self.default_region!r} is not a region code")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_mapping(cls, values) -> "MaskingSettings":
        """Build from a mapping keyed by upper-case names (os.environ or app.config)."""
        kwargs = {}
        for field in fields(cls):
            raw = values.get(field.name.upper())
            if raw is None or raw == "":
                continue
            if field.type == "int":
                try:
                    kwargs[field.name] = int(raw)
                except (TypeError, ValueError) as exc:
                    raise SettingsError(f"{field.name.upper()} must be a whole number, got {raw!r}") from exc
            else:
                kwargs[field.name] = str(raw)
        return cls(**kwargs)

    @classmethod
    def from_env(cls) -> "MaskingSettings":
        return cls.from_mapping(os.environ)
