"""Cheap checks run before a turn: redelivered events and people sending too fast."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class RecentIds:
    """Remembers the last `capacity` message IDs, to drop events a platform delivers twice.

    Platforms redeliver within minutes (Slack retries after 1s, 1m and 5m), so a bounded
    in-memory window is enough and costs nothing per message.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def first_time(self, key: str) -> bool:
        """True the first time `key` is seen, False for a repeat."""
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return True


class RateLimiter:
    """At most `per_minute` turns per person in any 60-second window (0 turns it off)."""

    WINDOW = 60.0

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = per_minute
        self._clock = clock
        self._recent: dict[str, deque[float]] = {}

    def wait_time(self, who: str) -> float:
        """Seconds `who` must wait before the next turn; 0 means go ahead (and counts it)."""
        if self._limit <= 0:
            return 0.0
        now = self._clock()
        stamps = self._recent.setdefault(who, deque())
        while stamps and now - stamps[0] >= self.WINDOW:
            stamps.popleft()
        if len(stamps) >= self._limit:
            return self.WINDOW - (now - stamps[0])
        stamps.append(now)
        if len(self._recent) > 10_000:  # forget people who have gone quiet
            self._recent = {
                k: v for k, v in self._recent.items() if v and now - v[-1] < self.WINDOW
            }
        return 0.0
