"""The reads every back end shares: a thread's window, range and newest items, page by page.

Each is built on one statement, a page of `(id, message_data)` rows between two IDs, read
with the back end's `_read`; walking a thread, reading a window up to a budget, a range, or
the SDK's newest-N all follow from it, so SQLite and PostgreSQL cannot drift apart in what a
window means.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from .codec import up_to_chars, window_items
from .primitives import Primitives
from .records import Item, MemoryRead, Summary, WindowItem

PAGE = 64
"""Rows fetched in the first step of a walk; each further step doubles it."""
MEASURED_ROWS = 60
"""Newest rows whose recorded usage a thread's tokens-per-character figure averages (a turn
records it on one row, so about the last 20-30 turns)."""


class PagedReads(Primitives):
    """Mixed into each store: its reads of a thread's items, over `_read`."""

    async def read_memory(self, session_id: str, *, density: bool = True) -> MemoryRead:
        """The thread's summary, measured density and newest items after the summary.

        One query, so planning a turn costs one trip to the database however the thread is
        kept; a window longer than the first page continues with `read_window`. Without
        `density` (the caller has a recent figure) the usage is not read.
        """
        rows = await self._read(
            self._sql.memory_read,
            session_id,
            MEASURED_ROWS if density else 0,
            PAGE,
            thread=session_id,
        )
        _, covers_id, text, created_at, tokens, chars = next(row for row in rows if row[0] == 0)
        summary = (
            None
            if text is None
            else Summary(text, int(covers_id), self._sql.dialect.time_of(created_at))
        )
        page = sorted((row[1], row[2]) for row in rows if row[0] == 1)
        measured = float(tokens) / float(chars) if tokens and chars else None
        below = int(page[0][0]) if len(page) == PAGE else None
        return MemoryRead(summary, measured, list(window_items(page)), continue_below=below)

    async def read_items(self, session_id: str, limit: int | None = None) -> list[Item]:
        """A thread's items, oldest first; with `limit`, only the newest `limit` of them.

        Mirrors the SDK's sessions: `limit=0` gives nothing, a negative limit gives all, and
        rows that cannot be decoded are skipped while older ones still fill the limit.
        """
        if limit is None or limit < 0:
            return [stored.item async for stored in self._walk(session_id, newest_first=False)]
        items: list[Item] = []
        if limit > 0:
            async for stored in self._walk(session_id, page=limit + 1):
                items.append(stored.item)
                if len(items) == limit:
                    break
        items.reverse()
        return items

    async def read_window(
        self,
        session_id: str,
        *,
        after_id: int = 0,
        before_id: int | None = None,
        max_chars: int,
    ) -> tuple[list[WindowItem], bool]:
        """The newest readable items after `after_id`, oldest first, as far back as `max_chars`.

        Reading stops at the first item that takes the total past `max_chars`; that item is
        included, so the caller can tell the window is full. The flag says whether every item
        after `after_id` was read. Cost follows the window, never the thread's length. With
        `before_id`, reading starts below that item (to continue a read).
        """
        items, complete = await up_to_chars(
            self._walk(session_id, after_id=after_id, before_id=before_id), max_chars
        )
        items.reverse()
        return items, complete

    async def read_range(
        self, session_id: str, *, after_id: int, before_id: int, max_chars: int
    ) -> list[WindowItem]:
        """Readable items between two IDs (exclusive), oldest first, as far as `max_chars`.

        The item that takes the total past `max_chars` is included, as in `read_window`.
        """
        items, _ = await up_to_chars(
            self._walk(session_id, after_id=after_id, before_id=before_id, newest_first=False),
            max_chars,
        )
        return items

    async def _walk(
        self,
        session_id: str,
        *,
        after_id: int = 0,
        before_id: int | None = None,
        page: int = PAGE,
        newest_first: bool = True,
    ) -> AsyncIterator[WindowItem]:
        """A thread's readable items between two IDs (exclusive), a page at a time.

        Pages double in size: a short read costs one small query, a long window few hops.
        """
        while True:
            rows = await self._read(
                self._sql.page_newest if newest_first else self._sql.page_oldest,
                session_id,
                after_id,
                before_id,
                page,
                thread=session_id,
            )
            for stored in window_items(rows):
                yield stored
            if len(rows) < page:
                return
            if newest_first:
                before_id = int(rows[-1][0])
            else:
                after_id = int(rows[-1][0])
            page *= 2
