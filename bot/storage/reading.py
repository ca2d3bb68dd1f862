"""The reads every back end shares, built on one primitive: a page of a thread's rows.

A back end says how to fetch one page of `(id, message_data)` rows between two IDs; walking a
thread, reading a window up to a budget, a range, or the SDK's newest-N all follow from it, so
SQLite and PostgreSQL cannot drift apart in what a window means.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from typing import Any

from .codec import up_to_chars, window_items
from .records import Item, MemoryRead, WindowItem
from .session import StoreSession

PAGE = 64
"""Rows fetched in the first step of a walk; each further step doubles it."""


class PagedReads(ABC):
    """Mixed into each store: its shared reads. Subclasses supply `_page` and `read_memory`."""

    @abstractmethod
    async def _page(
        self,
        session_id: str,
        *,
        after_id: int,
        before_id: int | None,
        limit: int,
        newest_first: bool,
    ) -> Sequence[Any]:
        """Up to `limit` `(id, message_data)` rows strictly between the IDs, in that order."""

    @abstractmethod
    async def read_memory(self, session_id: str, *, density: bool = True) -> MemoryRead: ...

    def session(self, session_id: str, *, limit: int | None = None) -> StoreSession:
        """An SDK `Session` for one thread. Cheap: no I/O, no connection, no thread."""
        return StoreSession(self, session_id, limit=limit)  # type: ignore[arg-type]

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
            rows = await self._page(
                session_id,
                after_id=after_id,
                before_id=before_id,
                limit=page,
                newest_first=newest_first,
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
