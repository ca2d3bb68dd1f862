"""The daily token budget per person (`BOT_DAILY_TOKENS_PER_USER`), and the UTC calendar
`/usage` counts in.

What a person spent today is read from the store (their turns in every thread of the platform,
undone ones included) and then kept here, topped up by this worker's own turns as they are
stored. Checking it before a turn is therefore a dictionary look-up, not a query: a query per
message cost about as much as the rest of the bookkeeping (bench.e2e_bench throughput). Other
workers' turns are seen when the figure is read again, at most `refresh` seconds later, so on
several workers a person can overrun the budget by what they spend in that time (a turn or two).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from cachetools import LRUCache

from ..storage import Store, Usage

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

REFRESH_SECONDS = 30.0
_PEOPLE = 100_000
"""People whose day is remembered; the least recently seen is forgotten (and read again)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def start_of_day(now: datetime) -> datetime:
    """Midnight UTC at the start of `now`'s day."""
    return datetime.combine(now.astimezone(UTC).date(), time(), UTC)


def start_of_month(now: datetime) -> datetime:
    """Midnight UTC on the first of `now`'s month."""
    return start_of_day(now).replace(day=1)


@dataclass
class _Tally:
    day: date
    tokens: int
    read_at: datetime


class DailyBudget:
    """How many tokens each person may still use today; no limit when `limit` is None."""

    def __init__(
        self,
        store: Store,
        limit: int | None,
        *,
        clock: Clock = utc_now,
        refresh: float = REFRESH_SECONDS,
    ) -> None:
        """
        Args:
            store: Where every turn's usage is recorded.
            limit: Tokens (in + out) per person per UTC day; None for no budget.
            clock: The time now (tests move it instead of sleeping).
            refresh: Seconds a figure read from the store is trusted before it is read again
                (what other workers spent shows up then).
        """
        self._store = store
        self._limit = limit
        self._clock = clock
        self._refresh = timedelta(seconds=refresh)
        self._tallies: LRUCache[tuple[str, str], _Tally] = LRUCache(maxsize=_PEOPLE)

    @property
    def limit(self) -> int | None:
        return self._limit

    def limited(self, limit: int | None) -> DailyBudget:
        """The same people's tallies under another limit (a profile's own budget): what a
        person spent counts once, whichever profile they spent it under."""
        view = copy.copy(self)
        view._limit = limit
        return view

    def now(self) -> datetime:
        return self._clock()

    async def spent_today(self, platform: str, user_id: str) -> int:
        """Tokens the person used today (UTC), in every thread on `platform`."""
        now = self._clock()
        key = (platform, user_id)
        tally = self._tallies.get(key)
        if tally is None or tally.day != now.date() or now - tally.read_at > self._refresh:
            totals = await self._store.person_usage(platform, user_id, since=start_of_day(now))
            tally = _Tally(now.date(), totals.tokens, now)
            self._tallies[key] = tally
        return tally.tokens

    async def exhausted(self, platform: str, user_id: str) -> bool:
        """Whether the person has used up today's budget (never, without a limit)."""
        if self._limit is None:
            return False
        spent = await self.spent_today(platform, user_id)
        if spent >= self._limit:
            logger.info("A person on %s is past today's budget (%d tokens)", platform, spent)
            return True
        return False

    def spend(self, platform: str, user_id: str, usage: Usage) -> None:
        """Count a turn this worker just stored, so the next check sees it without a query."""
        tally = self._tallies.get((platform, user_id))
        if tally is not None and tally.day == self._clock().date():
            tally.tokens += usage.input_tokens + usage.output_tokens

    def resets_in(self) -> timedelta:
        """Time until the budget resets, at the next midnight UTC."""
        now = self._clock()
        return start_of_day(now) + timedelta(days=1) - now
