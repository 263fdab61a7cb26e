"""A small Python client for the Masking API v2 (ours or the vendor's), built on requests.

    client = MaskingClient("http://127.0.0.1:5000", user_id="u...", token="mtk_...")
    masking = client.set("9876543210", "9876543211", expiry_duration=60, event_id="ticket-42")
    client.unset(mask=masking["mask"])

Every call has a timeout. A refusal from the service raises ``MaskingAPIError`` carrying the
vendor's ``code``, ``message`` and our ``detail``; a service that cannot be reached or answers
nonsense raises ``MaskingUnavailable``. Both derive from ``MaskingClientError``.
"""
from __future__ import annotations

import json
from typing import Any

import requests
from urllib3.exceptions import ReadTimeoutError

DEFAULT_TIMEOUT = (3.05, 10)  # seconds: (connect, read)


class MaskingClientError(Exception):
    """Any failure of a call through this client."""


class MaskingUnavailable(MaskingClientError):
    """The service could not be reached, timed out, or answered something that is not the API."""


class MaskingAPIError(MaskingClientError):
    """The service answered with an error envelope."""

    def __init__(self, code: int, message: str, detail: str | None = None, data: Any = None,
                 http_status: int | None = None):
        super().__init__(f"{code} {message}" + (f": {detail}" if detail else ""))
        self.code = code
        self.message = message
        self.detail = detail
        self.data = data
        self.http_status = http_status


def _timed_out(exc: requests.RequestException) -> bool:
    """A timeout, including one while reading the body: requests reports that one as a
    ConnectionError wrapping urllib3's ReadTimeoutError."""
    return isinstance(exc, requests.Timeout) or any(isinstance(arg, ReadTimeoutError) for arg in exc.args)


class MaskingClient:
    def __init__(self, base_url: str, *, user_id: str | None = None, token: str | None = None,
                 ssid: str | None = None, timeout=DEFAULT_TIMEOUT, session: requests.Session | None = None):
        if not ssid and not (user_id and token):
            raise ValueError("give ssid, or user_id with token")
        self.base_url = base_url.rstrip("/")
        self.credentials = {"ssid": ssid} if ssid else {"userId": user_id, "token": token}
        self.timeout = timeout
        self.http = session or requests.Session()

    def close(self) -> None:
        """Close the HTTP session's pooled connections."""
        self.http.close()

    def __enter__(self) -> "MaskingClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- the vendor's calls

    def set(self, m1, m2, *, expiry_duration: int | None = None, expiry_time: str | int | None = None,
            event_id: str | None = None) -> dict:
        """Mask m1 and m2; returns the masking (id, mask, m1, m2, eventId, status, created_at, expires_at)."""
        return self.call("Masking/set", {"m1": m1, "m2": m2, "eventId": event_id,
                                         "expiry_duration": expiry_duration, "expiry_time": expiry_time})

    def unset(self, *, mask=None, m1=None, m2=None, expiry_duration: int | None = None,
              expiry_time: str | int | None = None) -> dict:
        """End (no expiry given) or re-time the matching maskings; returns {action, count, maskings}."""
        return self.call("Masking/unset", {"mask": mask, "m1": m1, "m2": m2,
                                           "expiry_duration": expiry_duration, "expiry_time": expiry_time})

    # -- our additions

    def get(self, masking_id: int) -> dict:
        return self.call("Masking/get", {"id": masking_id})

    def list(self, **filters) -> dict:
        """One page: {maskings, next_cursor}. Filters: m1, m2, mask, eventId, status, created_from,
        created_to, limit, cursor."""
        return self.call("Masking/list", filters)

    def login(self) -> str:
        """Exchange userId and token for an ssid, and use it from now on."""
        data = self.call("Auth/login", {})
        self.credentials = {"ssid": data["ssid"]}
        return data["ssid"]

    # -- plumbing

    def call(self, endpoint: str, params: dict) -> Any:
        body = {**self.credentials, **{k: v for k, v in params.items() if v is not None}}
        url = f"{self.base_url}/api/v2/{endpoint}"
        try:
            response = self.http.post(url, data=json.dumps(body), timeout=self.timeout,
                                      headers={"Content-Type": "application/json"})
        except requests.RequestException as exc:
            if _timed_out(exc):
                raise MaskingUnavailable(f"the masking service did not answer in time ({url})") from exc
            raise MaskingUnavailable(f"the masking service cannot be reached ({url})") from exc
        try:
            payload = response.json()
        except ValueError:
            raise MaskingUnavailable(
                f"the masking service answered HTTP {response.status_code} without a JSON body") from None
        if not isinstance(payload, dict) or payload.get("status") not in ("success", "error"):
            raise MaskingUnavailable(f"the masking service answered HTTP {response.status_code} "
                                     "with something that is not the API's envelope")
        if payload["status"] == "error":
            code = payload.get("code")
            raise MaskingAPIError(code if isinstance(code, int) else 1009, str(payload.get("message", "")),
                                  payload.get("detail"), payload.get("data"), response.status_code)
        return payload.get("data")
