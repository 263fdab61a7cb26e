"""A rate limit per API account, as the big masking services have (Twilio Proxy: about 30
requests a second per endpoint, then 429). No Flask.

It keeps one integrator's runaway loop from taking the whole pool or the database's write
lock from everyone else. Off unless ``API_RATE_LIMIT`` is set; the vendor documents none,
so a drop-in replacement refuses nothing by default.

* ``API_RATE_LIMIT``: one or more limits in the ``limits`` library's notation, ``;``
  between them: ``30/second``, ``30 per second; 1000/hour``. Every API call an account makes
  once its credentials are checked counts against all of them; a refused call does not count,
  so a client that waits the ``Retry-After`` it is given gets through. Calls with wrong
  credentials are not counted: counting them would let anyone spend a stranger's allowance.
  The dashboard's own accounts are not limited (agents are people; their logins are).
* ``API_RATE_LIMIT_STORAGE``: where the counts live. ``memory://`` (the default) counts in
  each worker process, so with ``WEB_CONCURRENCY`` workers an account may get up to that
  many times the limit; ``redis://HOST:PORT/DB`` counts once for every process and host.
  If the store cannot be reached the call goes through (the limit protects the service; it
  must not stop it) and a warning is logged, at most once a minute.

Counting is a sliding window (``limits``' sliding window counter): no burst of twice the
limit across a window's edge, as fixed windows allow, and two numbers per key in the store.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # ``limits`` is imported only once a limit is used: it costs start-up time (~0.1 s)
    from limits import RateLimitItem
    from limits.strategies import SlidingWindowCounterRateLimiter

log = logging.getLogger("masking.rate_limit")

WARN_EVERY = 60.0  # seconds between two warnings about an unreachable store
NAMESPACE = "masking-api"  # the keys' prefix in a shared store
STORE_TIMEOUT = 0.25  # seconds: a store that does not answer delays a call by this much, no more


@dataclass(frozen=True)
class Refusal:
    limit: str  # the limit that was reached, in words
    retry_after: int  # whole seconds until a call may succeed (at least 1)


class AccountRateLimit:
    """The limits of ``API_RATE_LIMIT``, counted per account in the configured store.

    The store is made at first use in each process (a worker forked from a process that made
    one gets its own), and is thread-safe.
    """

    def __init__(self, items: tuple[RateLimitItem, ...] = (), storage_uri: str = "memory://"):
        self.items = items
        self.storage_uri = storage_uri
        self._limiter: SlidingWindowCounterRateLimiter | None = None
        self._pid = None
        self._lock = threading.Lock()
        self._warned_at = -math.inf

    @property
    def enabled(self) -> bool:
        return bool(self.items)

    def _strategy(self) -> SlidingWindowCounterRateLimiter:
        if self._limiter is None or self._pid != os.getpid():
            with self._lock:
                if self._limiter is None or self._pid != os.getpid():
                    from limits.storage import storage_from_string
                    from limits.strategies import SlidingWindowCounterRateLimiter

                    options = {} if self.storage_uri.startswith("memory") else {
                        "socket_timeout": STORE_TIMEOUT, "socket_connect_timeout": STORE_TIMEOUT}
                    self._limiter = SlidingWindowCounterRateLimiter(storage_from_string(self.storage_uri, **options))
                    self._pid = os.getpid()
        return self._limiter

    def hit(self, account_key: str) -> Refusal | None:
        """Count one call of ``account_key`` (the account's userId); a Refusal when over a limit."""
        if not self.items:
            return None
        try:
            limiter = self._strategy()
            for item in self.items:  # shortest window first (masking.settings sorts them)
                if not limiter.hit(item, NAMESPACE, account_key):
                    reset = limiter.get_window_stats(item, NAMESPACE, account_key).reset_time
                    return Refusal(str(item), max(1, math.ceil(reset - time.time())))
        except Exception as exc:  # the store is down or unreachable: let the call through
            self._warn(exc)
        return None

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning("rate limit not applied: its store (%s) failed: %s", self.storage_uri.split("://")[0],
                        type(exc).__name__)
