"""Which platform events were taken already, so a redelivered one is answered once."""

from __future__ import annotations

from cachetools import LRUCache


class RecentKeys:
    """Remembers the last `capacity` event keys this process has claimed.

    Platforms redeliver within minutes (Slack retries after 1s, 1m and 5m), so a bounded
    in-memory window is enough for one process and costs nothing per message. Several
    processes need the database's table instead (PostgreSQL's `bot_deliveries`).
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._seen: LRUCache[str, None] = LRUCache(maxsize=capacity)

    def __contains__(self, key: str) -> bool:
        return key in self._seen

    def first_time(self, key: str) -> bool:
        """True the first time `key` is seen, False for a repeat."""
        if key in self._seen:
            self._seen[key] = None  # a key redelivered again stays remembered longest
            return False
        self._seen[key] = None
        return True
