"""Token-bucket rate limiting per caller, in memory, safe across threads.

Examples
--------
>>> limiter = RateLimiter(per_minute=60, burst=2)
>>> limiter.acquire("dr-smith"), limiter.acquire("dr-smith"), limiter.acquire("dr-smith") > 0
(0.0, 0.0, True)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Allow ``burst`` requests at once, refilled at ``per_minute`` per minute per key.

    Parameters
    ----------
    per_minute : sustained requests per minute for one key.
    burst : bucket size, the most requests one key may send back to back.
    max_keys : keys remembered at most; full buckets are forgotten first, so a
        flood of new keys (e.g. spoofed addresses) cannot exhaust memory.
    clock : monotonic time source in seconds (for tests).
    """

    def __init__(
        self,
        per_minute: int,
        burst: int,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take one token for ``key``; return 0.0, or the seconds to wait if none is left."""
        rate = self.per_minute / 60.0
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                self._forget_full(now, rate)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate

    def _forget_full(self, now: float, rate: float) -> None:
        if len(self._buckets) <= self.max_keys:
            return
        self._buckets = {
            k: (t, last)
            for k, (t, last) in self._buckets.items()
            if t + (now - last) * rate < self.burst
        }
