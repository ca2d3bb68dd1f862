"""What the operator's page reads that no chat command does: the thread list a page at a
time, a thread's rows with their usage, the days' usage, the approvals waiting.

Written once over `_read`, like the commands' reads. Each costs what its page shows: the thread
list walks the `updated_at` index from the previous page's end (never an OFFSET), and the
facts of a page's threads come from one grouped pass over their rows.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from .codec import approval_of, dumped_message
from .primitives import Primitives, Scope, Transaction
from .records import (
    Author,
    DailyUsage,
    DumpedMessage,
    PendingApproval,
    ThreadCursor,
    ThreadFilter,
    ThreadPage,
    ThreadRow,
)

PEOPLE_ROWS = 200
"""A thread's newest rows read for who is in it: a list costs what its rows cost, never a
walk through a long thread."""


class Browsing(Primitives):
    """Mixed into each store: the operator page's reads, over `_read`."""

    async def thread_page(
        self, where: ThreadFilter, *, after: ThreadCursor | None = None, limit: int = 50
    ) -> ThreadPage:
        """Threads matching `where`, most recently active first, from after `after`."""
        d = self._sql.dialect
        rows = await self._read(
            self._sql.thread_page,
            f"{where.platform}:" if where.platform else None,
            where.person,
            None if where.active_from is None else d.stamp(where.active_from),
            None if where.active_before is None else d.stamp(where.active_before),
            None if after is None else d.stamp(after.updated_at),
            "" if after is None else after.session_id,
            limit + 1,
        )
        shown = await asyncio.gather(*(self._thread_row(row) for row in rows[:limit]))
        more = None
        if len(rows) > limit:
            more = ThreadCursor(shown[-1].updated_at, shown[-1].session_id)
        return ThreadPage(tuple(shown), more)

    async def thread_row(self, session_id: str) -> ThreadRow | None:
        """One thread as the list shows it; None when it holds no memory (or was forgotten)."""
        rows = await self._read(self._sql.thread_row, session_id, thread=session_id)
        return await self._thread_row(rows[0]) if rows else None

    async def _thread_row(self, row: Any) -> ThreadRow:
        session_id, created, updated, items, tokens = row
        people = await self._read(
            self._sql.recent_people, session_id, PEOPLE_ROWS, thread=session_id
        )
        time_of = self._sql.dialect.time_of
        return ThreadRow(
            str(session_id),
            time_of(created),
            time_of(updated),
            int(items),
            int(tokens),
            tuple(Author(str(who), str(name or who)) for who, name in people),
        )

    async def thread_rows(
        self, session_id: str, *, before_id: int | None = None, limit: int
    ) -> list[DumpedMessage]:
        """Up to `limit` of a thread's rows below `before_id` (None: its newest), oldest
        first, each with its author, time and the usage recorded on it."""
        rows = await self._read(
            self._sql.thread_rows, session_id, before_id, limit, thread=session_id
        )
        time_of = self._sql.dialect.time_of
        return [dumped_message(row, time_of) for row in reversed(rows)]

    async def daily_usage(self, since: datetime) -> list[DailyUsage]:
        """Turns and tokens per UTC day, platform and model, from `since`'s day on, oldest
        first: read from the day counters the schema's triggers keep (`USAGE_DAYS`), so it
        costs what the days cost, however many turns they held."""
        rows = await self._read(self._sql.daily_usage, since.astimezone(UTC).strftime("%Y-%m-%d"))
        return [
            DailyUsage(
                str(day), str(platform).removesuffix(":"), str(model), int(turns), int(spent)
            )
            for day, platform, model, turns, spent in rows
        ]

    async def fold_usage_days(self, before: datetime) -> int:
        """Fold the day counters of the UTC days before `before`'s into one row per day,
        platform and model; returns how many rows there were. The triggers add a row per
        statement that adds or removes usage, which keeps writers from ever waiting on a
        counter; folding now and then keeps reading a month cheap."""
        day = before.astimezone(UTC).strftime("%Y-%m-%d")

        async def fold(tx: Transaction) -> int:
            rows = await tx.rows(self._sql.take_usage_days, day)
            sums: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
            for when, where, model, turns, spent in rows:
                counted = sums[str(when), str(where), str(model)]
                counted[0] += int(turns)
                counted[1] += int(spent)
            await tx.run_many(
                self._sql.put_usage_day,
                [
                    (*key, turns, spent)
                    for key, (turns, spent) in sorted(sums.items())
                    if turns or spent
                ],
            )
            return len(rows)

        return await self._transaction(fold, Scope())

    async def active_threads(self, since: datetime) -> int:
        """How many threads were active at or after `since`."""
        rows = await self._read(self._sql.active_threads, self._sql.dialect.stamp(since))
        return int(rows[0][0])

    async def waiting_approvals(self) -> list[PendingApproval]:
        """Every pending approval, the soonest to expire first."""
        rows = await self._read(self._sql.waiting_approvals)
        return [approval_of(row, self._sql.dialect.time_of) for row in rows]
