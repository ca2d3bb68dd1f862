"""Cheap checks run before a turn: people sending too fast, or over their daily budget."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from cachetools import LRUCache

from .ops.budget import DailyBudget
from .texts import OVER_BUDGET, SLOW_DOWN


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


@dataclass(frozen=True)
class Refusal:
    """Why a message gets a notice instead of a turn."""

    outcome: str
    """For the metrics: `rate_limited` or `over_budget`."""
    notice: str


class Admission:
    """Whether a person may start a turn now: not too fast, and within today's budget."""

    def __init__(self, rate: RateLimiter) -> None:
        self._rate = rate

    async def refusal(
        self, platform: str, author_id: str, budget: DailyBudget, *, prefix: str
    ) -> Refusal | None:
        """The notice for someone who may not start a turn now under `budget` (the profile's
        in force where they wrote); None when they may (and the turn is counted against their
        rate)."""
        wait = self._rate.wait_time(f"{platform}:{author_id}")
        if wait > 0:
            return Refusal("rate_limited", SLOW_DOWN.format(seconds=max(1, round(wait))))
        if await budget.exhausted(platform, author_id):
            notice = OVER_BUDGET.format(
                limit=budget.limit or 0, left=_hours_minutes(budget.resets_in()), prefix=prefix
            )
            return Refusal("over_budget", notice)
        return None


def _hours_minutes(span: timedelta) -> str:
    minutes = max(1, math.ceil(span.total_seconds() / 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
