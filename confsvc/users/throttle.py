"""Login throttling (issue 16, defect 5), with the ``limits`` library.

Failed logins are counted per account (the username as typed, case-folded) and per client address
in a moving window of ``login_window_seconds``: over ``login_attempts_per_account`` or
``login_attempts_per_address`` failures, every further attempt (even with the right password) is
refused with :class:`~confsvc.errors.TooManyRequests` (429 + ``Retry-After``) until the window
frees a slot. A successful login clears the account's count. Storage: Redis when
``CONFSVC_REDIS_URL`` is set (every worker shares the counts), else this process's memory; while
Redis does not answer, this process's memory counts instead (logins never fail because of the broker).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import Any

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from confsvc.config import Settings
from confsvc.errors import TooManyRequests

NAMESPACE = "confsvc-login"
log = logging.getLogger("confsvc.login_throttle")


class LoginThrottle:
    """Counts failures by account and address; refuses while either is over its limit."""

    def __init__(self, settings: Settings) -> None:
        self.fallback = MovingWindowRateLimiter(storage_from_string("memory://"))
        self.limiter = MovingWindowRateLimiter(storage_from_string(settings.redis_url)) if settings.redis_url \
            else self.fallback
        window = settings.login_window_seconds
        self.per_account = RateLimitItemPerSecond(settings.login_attempts_per_account, window, namespace=NAMESPACE)
        self.per_address = RateLimitItemPerSecond(settings.login_attempts_per_address, window, namespace=NAMESPACE)

    def _run(self, method: str, *args: Any) -> Any:
        """``limiter.<method>(*args)`` on the shared storage, or in memory while it does not answer."""
        try:
            return getattr(self.limiter, method)(*args)
        except Exception as exc:  # noqa: BLE001 - the shared storage is down: count in memory meanwhile
            if self.limiter is self.fallback:
                raise
            log.warning("login throttle storage unavailable, counting in memory: %s", exc)
            return getattr(self.fallback, method)(*args)

    def _keys(self, username: str, address: str | None) -> Iterator[tuple]:
        yield self.per_account, ("account", username.casefold())
        if address:
            yield self.per_address, ("address", address)

    def check(self, username: str, address: str | None) -> None:
        """Raises TooManyRequests (``login_throttled``, ``retry_after`` in seconds) when over a limit."""
        for item, key in self._keys(username, address):
            if not self._run("test", item, *key):
                reset = self._run("get_window_stats", item, *key).reset_time
                retry_after = max(1, math.ceil(reset - time.time()))
                raise TooManyRequests(f"too many failed logins; try again in {retry_after} s",
                                      code="login_throttled", retry_after=retry_after)

    def failed(self, username: str, address: str | None) -> None:
        for item, key in self._keys(username, address):
            self._run("hit", item, *key)

    def succeeded(self, username: str) -> None:
        self._run("clear", self.per_account, "account", username.casefold())
