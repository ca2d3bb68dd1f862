"""Cheap checks run before a turn: people sending too fast."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from cachetools import LRUCache


class RateLimiter:
    """At most `per_minute` turns per person in any 60-second window (0 turns it off).

    The newest `capacity` people are tracked; someone quiet long enough to fall out of that
    has no recent turns to count anyway.
    """

    WINDOW = 60.0

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        capacity: int = 10_000,
    ) -> None:
        self._limit = per_minute
        self._clock = clock
        self._recent: LRUCache[str, deque[float]] = LRUCache(maxsize=capacity)

    def wait_time(self, who: str) -> float:
        """Seconds `who` must wait before the next turn; 0 means go ahead (and counts it)."""
        if self._limit <= 0:
            return 0.0
        now = self._clock()
        stamps = self._recent.get(who)
        if stamps is None:
            stamps = self._recent[who] = deque()
        while stamps and now - stamps[0] >= self.WINDOW:
            stamps.popleft()
        if len(stamps) >= self._limit:
            return self.WINDOW - (now - stamps[0])
        stamps.append(now)
        return 0.0
