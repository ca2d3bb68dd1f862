"""What a search means, on every back end: the query's words, every word first, then any.

Each back end matches with its own index (SQLite's FTS5, PostgreSQL's `tsvector`) and its own
query syntax; which words count and how the two passes merge is decided here once.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from .codec import decode_stored
from .records import FoundMessage, StoredItem

_WORD = re.compile(r"\w+")
_MOST_WORDS = 32
"""Words of a query that are matched; the rest are ignored, so no query is unbounded."""


def match_expressions(
    query: str, term: Callable[[str], str], *, all_of: str, any_of: str
) -> list[str]:
    """The expressions to try, in order: the query's words as `term`s joined by `all_of`, then
    (with more than one word) by `any_of`. Any text is a valid query: only its words count,
    never its punctuation or operators. None for a query without words."""
    terms = [term(word) for word in _WORD.findall(query)[:_MOST_WORDS]]
    if len(terms) < 2:
        return terms
    return [all_of.join(terms), any_of.join(terms)]


async def best_matches(
    expressions: Iterable[str],
    fetch: Callable[[str], Awaitable[Iterable[Any]]],
    *,
    limit: int,
    time_of: Callable[[Any], datetime],
) -> list[StoredItem]:
    """Up to `limit` items, best first: each expression's rows (as `fetch` returns them, the
    stored-item columns) after the previous one's, each item once."""
    found: list[StoredItem] = []
    for expression in expressions:
        if len(found) >= limit:
            break
        seen = {stored.id for stored in found}
        rows = await fetch(expression)
        found += [stored for stored in decode_stored(rows, time_of) if stored.id not in seen]
    return found[:limit]


def found_messages(rows: Iterable[Any], time_of: Callable[[Any], datetime]) -> list[FoundMessage]:
    """(session_id, then the stored-item columns) rows as found messages, in order."""
    rows = list(rows)
    stored = decode_stored((row[1:] for row in rows), time_of)
    threads = {int(row[1]): str(row[0]) for row in rows}
    return [FoundMessage(threads[item.id], item) for item in stored]
