"""Searching PostgreSQL memory: one thread's messages (the bot's search tool) or every
thread's (the operator page), over the `tsvector` table the bot keeps beside the messages.

The index is filled when it is about to be searched, not on insert: indexing inside every
turn's commit made each turn's write about twice as costly on the server (bench.store_bench),
while searches are rare.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

from ..dialect import POSTGRES
from ..layout import MESSAGES, SEARCH, SESSIONS, STORED_COLUMNS, qualified
from ..matching import best_matches, found_messages, match_expressions
from ..records import FoundMessage, StoredItem
from .schema import Connection

logger = logging.getLogger(__name__)

# Indexing one thread's messages not yet in the search index (every row gets an entry, empty
# for tool items, so each is looked at once): those above the newest it has. A thread's rows
# commit in ID order (one turn at a time holds it, on every worker), so none is left below. An
# anti-join instead was planned as a nested loop over a table the planner thought empty, which
# made the first search of a long thread quadratic.
_INDEX_THREAD = f"""
INSERT INTO {SEARCH} (id, session_id, words)
SELECT m.id, m.session_id, bot_words(m.message_data) FROM {MESSAGES} AS m
WHERE m.session_id = $1
  AND m.id > coalesce((SELECT max(id) FROM {SEARCH} WHERE session_id = $1), 0)
ON CONFLICT (id) DO NOTHING
"""

_SEARCH = f"""
SELECT {qualified(STORED_COLUMNS, "m")}
FROM {SEARCH} AS s JOIN {MESSAGES} AS m ON m.id = s.id, to_tsquery('simple', $2) AS q
WHERE s.session_id = $1 AND s.words @@ q
ORDER BY ts_rank(s.words, q) DESC, m.id DESC LIMIT $3
"""

# Indexing, before a search across every thread, the messages stored since the last such
# catch-up: any with a higher ID than it saw, a batch of IDs at a time (an import keeps its
# threads' old times, so IDs, not times); and the newer rows of threads active since shortly
# before it, since commits of different threads may land out of ID order.
_INDEX_IDS = f"""
INSERT INTO {SEARCH} (id, session_id, words)
SELECT m.id, m.session_id, bot_words(m.message_data) FROM {MESSAGES} AS m
WHERE m.id > $1 AND m.id <= $2
ON CONFLICT (id) DO NOTHING
"""
_INDEX_ACTIVE = f"""
INSERT INTO {SEARCH} (id, session_id, words)
SELECT m.id, m.session_id, bot_words(m.message_data)
FROM {SESSIONS} AS a
CROSS JOIN LATERAL (
    SELECT coalesce(max(id), 0) AS top FROM {SEARCH} AS s WHERE s.session_id = a.session_id
) AS indexed
JOIN {MESSAGES} AS m ON m.session_id = a.session_id AND m.id > indexed.top
WHERE a.updated_at >= $1
ON CONFLICT (id) DO NOTHING
"""
_INDEXED_THROUGH = f"SELECT coalesce(max(id), 0), now() AT TIME ZONE 'UTC' FROM {MESSAGES}"
INDEX_BATCH = 20_000
"""Message IDs indexed per statement when the index catches up (about a second's work)."""
_CATCH_UP_MARGIN = 300.0
"""Seconds before the last catch-up from which active threads are looked at again: far more
than a turn's commit takes, so a transaction in flight then is seen the next time."""

_SEARCH_ALL = f"""
SELECT m.session_id, {qualified(STORED_COLUMNS, "m")}
FROM {SEARCH} AS s JOIN {MESSAGES} AS m ON m.id = s.id
WHERE s.words @@ to_tsquery('simple', $1) AND s.id < $2::bigint
ORDER BY s.id DESC LIMIT $3
"""


class PostgresSearch:
    """Mixed into `PostgresStore`: its searches, over its `_connection`."""

    _indexing: asyncio.Lock
    """Held while the index catches up, so concurrent searches wait rather than repeat it."""
    _caught_up: tuple[datetime, int] | None
    """When the last catch-up for a search across threads ran, and the highest message ID it
    saw; None: never (the first one reads every row once)."""

    def _connection(self) -> AbstractAsyncContextManager[Connection]:
        raise NotImplementedError

    async def search(self, session_id: str, query: str, *, limit: int) -> list[StoredItem]:
        """This thread's messages best matching the words of `query` (prefixes too), best
        first: those with every word, then those with some. Any text is a valid query.

        The thread's messages not yet in the index are added first, in the same transaction:
        indexing on every insert made each turn's write about twice as costly on the server
        (bench.store_bench), while searches are rare.
        """
        expressions = match_expressions(
            query.lower(), lambda word: f"'{word}':*", all_of=" & ", any_of=" | "
        )
        if not expressions:
            return []
        async with self._connection() as conn, conn.transaction():
            await conn.execute(_INDEX_THREAD, session_id)

            async def fetch(expression: str) -> Iterable[Any]:
                return await conn.fetch(_SEARCH, session_id, expression, limit)

            return await best_matches(expressions, fetch, limit=limit, time_of=POSTGRES.time_of)

    async def index_for_search(self) -> None:
        """Bring the search index up to date with every stored message, a batch of IDs per
        statement: what a search across threads does first, and what a server may start
        ahead of the first one. One at a time per process: a search arriving meanwhile
        waits for it rather than doing the same work beside it."""
        async with self._indexing, self._connection() as conn:
            newest, now = (await conn.fetch(_INDEXED_THROUGH))[0]
            since, through = self._caught_up or (None, 0)
            if int(newest) - through > 10 * INDEX_BATCH:
                logger.info("Indexing messages #%d to #%d for search", through + 1, newest)
            for start in range(through, int(newest), INDEX_BATCH):
                await conn.execute(_INDEX_IDS, start, min(start + INDEX_BATCH, int(newest)))
            if since is not None:
                await conn.execute(_INDEX_ACTIVE, since - timedelta(seconds=_CATCH_UP_MARGIN))
            self._caught_up = (now, int(newest))

    async def search_threads(
        self, query: str, *, before_id: int | None = None, limit: int
    ) -> list[FoundMessage]:
        """Messages of any thread holding every word of `query` (prefixes too), newest first.

        The messages stored since the last such search are indexed first; the first search
        of a process looks at every row once.
        """
        expressions = match_expressions(
            query.lower(), lambda word: f"'{word}':*", all_of=" & ", any_of=" | "
        )
        if not expressions:
            return []
        await self.index_for_search()
        below = (1 << 62) if before_id is None else before_id
        async with self._connection() as conn:
            rows = await conn.fetch(_SEARCH_ALL, expressions[0], below, limit)
        return found_messages(rows, POSTGRES.time_of)
