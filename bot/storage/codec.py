"""Rows in and out, the same for every back end: items as JSON text, and back.

The JSON text is what both the SDK and the bot store, so a row written by either side reads
back the same; sizes are measured on that text (what the window planner budgets in).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from .records import (
    Author,
    DumpedMessage,
    DumpedSummary,
    Item,
    LedgerEntry,
    PendingApproval,
    StoredItem,
    ThreadDump,
    Usage,
    UsageLine,
    UsageTotals,
    WindowItem,
)

logger = logging.getLogger(__name__)

Row = tuple[
    str,
    str,
    str | None,
    str | None,
    str | None,
    int | None,
    int | None,
    int | None,
    int | None,
    str | None,
    str | None,
]
"""One new message row: (session_id, message_data, author_id, author_name) and, on the row a
model call produced last, what producing the turn cost, under which profile and for whom:
(model, input_tokens, cached_tokens, output_tokens, input_chars, profile, asked_by); None for
those on every other row."""


def encode_rows(
    session_id: str, items: Sequence[Item], author: Author | None, usage: Usage | None
) -> list[Row]:
    """A turn's items as rows: the author on user messages, the cost on the last row."""
    rows: list[Row] = []
    for index, item in enumerate(items):
        # ensure_ascii keeps lone surrogates as escapes instead of failing to encode as UTF-8.
        data = json.dumps(item)
        writer = author if author is not None and item.get("role") == "user" else None
        cost = usage if usage is not None and index == len(items) - 1 else None
        rows.append(
            (
                session_id,
                data,
                writer.id if writer else None,
                writer.name if writer else None,
                cost.model if cost else None,
                cost.input_tokens if cost else None,
                cost.cached_tokens if cost else None,
                cost.output_tokens if cost else None,
                cost.input_chars if cost else None,
                cost.profile if cost else None,
                author.id if cost and author else None,
            )
        )
    return rows


def decode(data: Any) -> Item | None:
    """A stored item, or None for a row that is not a JSON object (skipped, as the SDK does)."""
    try:
        item = json.loads(data)
    except (json.JSONDecodeError, TypeError):
        logger.warning("Skipping an unreadable stored item")
        return None
    return item if isinstance(item, dict) else None


def window_items(rows: Iterable[Any]) -> Iterator[WindowItem]:
    """(id, message_data) rows as window items, in order, skipping unreadable ones."""
    for row_id, data in rows:
        item = decode(data)
        if item is not None:
            yield WindowItem(row_id, item, len(data))


def decode_items(rows: Iterable[Any]) -> list[Item]:
    """Rows whose first column is message_data, as items (unreadable ones skipped)."""
    return [item for row in rows if (item := decode(row[0])) is not None]


def decode_stored(rows: Iterable[Any], timestamp: Callable[[Any], datetime]) -> list[StoredItem]:
    """(id, message_data, author_id, author_name, created_at) rows as stored items."""
    decoded: list[StoredItem] = []
    for row_id, data, author_id, author_name, created_at in rows:
        try:
            item = json.loads(data)
        except (json.JSONDecodeError, TypeError):
            continue
        author = Author(author_id, author_name or author_id) if author_id else None
        decoded.append(StoredItem(int(row_id), item, author, timestamp(created_at)))
    return decoded


def usage_of(
    model: Any, input_tokens: Any, cached: Any, output: Any, chars: Any, profile: Any = None
) -> Usage | None:
    """A row's recorded usage columns as `Usage`, or None when the row recorded none."""
    if input_tokens is None:
        return None
    return Usage(
        model, int(input_tokens), int(cached or 0), int(output or 0), int(chars or 0), profile
    )


def dumped_message(row: Any, timestamp: Callable[[Any], datetime]) -> DumpedMessage:
    """A row of (id, message_data, author_id, author_name, created_at, the usage columns,
    asked_by) as kept."""
    return DumpedMessage(
        int(row[0]),
        str(row[1]),
        Author(row[2], row[3] or row[2]) if row[2] else None,
        timestamp(row[4]),
        usage_of(*row[5:11]),
        row[11],
    )


def thread_dump(
    session_id: str,
    times: Any,
    messages: Iterable[Any],
    summaries: Iterable[Any],
    ledger: Iterable[Any],
    timestamp: Callable[[Any], datetime],
) -> ThreadDump:
    """A thread's rows as a dump, read in the same column order on every back end:
    `times` (created_at, updated_at); messages (id, message_data, author_id, author_name,
    created_at, the usage columns, asked_by); summaries (covers_id, summary, created_at); ledger
    (kind, author_id, the usage columns, created_at)."""
    created, updated = times if times else (None, None)
    ledger_rows = tuple(ledger)
    return ThreadDump(
        session_id=session_id,
        created_at=timestamp(created),
        updated_at=timestamp(updated),
        messages=tuple(dumped_message(row, timestamp) for row in messages),
        summaries=tuple(
            DumpedSummary(int(covers), text, timestamp(when)) for covers, text, when in summaries
        ),
        ledger=tuple(
            LedgerEntry(
                row[0],
                row[1],
                usage_of(*row[2:8]) or Usage(row[2], profile=row[7]),
                timestamp(row[8]),
            )
            for row in ledger_rows
        ),
        forgotten=not times and bool(ledger_rows),
    )


def usage_values(usage: Usage | None) -> tuple[Any, ...]:
    """`Usage` as the row's usage columns, in `USAGE_COLUMNS` order (all None for a row
    without)."""
    if usage is None:
        return (None, None, None, None, None, None)
    return (
        usage.model,
        usage.input_tokens,
        usage.cached_tokens,
        usage.output_tokens,
        usage.input_chars,
        usage.profile,
    )


async def up_to_chars(
    items: AsyncIterator[WindowItem], max_chars: int
) -> tuple[list[WindowItem], bool]:
    """Items in the order walked, up to the first that takes the total past `max_chars`
    (included); and whether the walk ended before that."""
    taken: list[WindowItem] = []
    total = 0
    async for stored in items:
        taken.append(stored)
        total += stored.chars
        if total > max_chars:
            return taken, False
    return taken, True


APPROVAL_COLUMNS = (
    "approval_id, session_id, platform, requester_id, requester_name, calls, state, items, "
    "instructions, expires_at, address, running_since, profile"
)
"""The approvals table's columns, in the order `approval_of` reads them."""


def approval_of(row: Any, timestamp: Callable[[Any], datetime]) -> PendingApproval:
    """A pending approval from a row of `APPROVAL_COLUMNS`."""
    return PendingApproval(
        approval_id=row[0],
        session_id=row[1],
        platform=row[2],
        requester=Author(row[3], row[4]),
        calls=row[5],
        state=row[6],
        items=row[7],
        instructions=row[8],
        expires_at=timestamp(row[9]),
        address=row[10],
        running_since=None if row[11] is None else timestamp(row[11]),
        profile=row[12],
    )


def totals_of(row: Any) -> UsageTotals:
    """(calls, input, cached, output) as totals."""
    if row is None:
        return UsageTotals()
    calls, input_tokens, cached, output = row
    return UsageTotals(int(calls), int(input_tokens), int(cached), int(output))


def lines_of(rows: Iterable[Any]) -> list[UsageLine]:
    """(key, calls, input, cached, output) rows as report lines."""
    return [UsageLine(str(row[0] or ""), totals_of(row[1:])) for row in rows]
