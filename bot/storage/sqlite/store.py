"""The SQLite store: one object owns the database for the whole process.

Two `aiosqlite` connections serve a file database: a writer (behind `Writer`, which queues and
group-commits every mutation) and a reader, so a window load never waits behind another
thread's fsync. WAL mode lets the reader see every committed turn without blocking the writer.
An in-memory database has no second connection to share it with, so it uses one for both.

Per-thread sessions (`session()`) are views holding only an ID and this store: making one per
message costs no connection and no thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiosqlite

from .. import usage_sql
from ..codec import (
    APPROVAL_COLUMNS,
    approval_of,
    decode_items,
    decode_stored,
    encode_rows,
    thread_dump,
    usage_values,
    window_items,
)
from ..deliveries import RecentKeys
from ..erasure import COLUMNS as ERASURE_COLUMNS
from ..erasure import plan_erasure, platform_prefix
from ..layout import APPROVALS, MESSAGES, SEARCH, SESSIONS, SUMMARIES, USAGE, USAGE_COLUMNS
from ..reading import PAGE as _PAGE
from ..reading import PagedReads
from ..records import (
    Author,
    ClearResult,
    ForgetReport,
    Item,
    MemoryRead,
    PendingApproval,
    SessionInfo,
    StoredItem,
    Summary,
    ThreadDump,
    Usage,
    UsageGrouping,
    UsageLine,
    UsageTotals,
    format_timestamp,
    parse_timestamp,
)
from .schema import ensure_schema, index_new_messages
from .writer import StoreClosedError, Writer, insert_rows

logger = logging.getLogger(__name__)

IN_MEMORY = ":memory:"

# json_extract raises on malformed JSON, and SQLite does not promise to short-circuit AND, so a
# CASE guards it: a corrupt row never breaks a query, it just is not a user message.
_ROLE = "CASE WHEN json_valid(message_data) THEN json_extract(message_data, '$.role') END"

_COLUMNS = "id, message_data, author_id, author_name, created_at"

_USAGE = ", ".join(USAGE_COLUMNS)
_KEPT_SUMMARIES = 4
"""Summaries kept per thread: the one in use and a few to fall back on after /undo."""
_MEASURED_ROWS = 60
"""Newest rows whose recorded usage a thread's tokens-per-character figure averages (a turn
records it on one row, so about the last 20-30 turns)."""
_WORD = re.compile(r"\w+")

# The state row (kind 0: summary, its coverage, usage sums), then the newest page of the
# thread's items after that summary (kind 1), in one statement.
_DENSITY = f"""
SELECT sum(input_tokens) AS tokens, sum(input_chars) AS chars FROM (
    SELECT input_tokens, input_chars FROM {MESSAGES} WHERE session_id = ?1
    ORDER BY id DESC LIMIT ?2)
WHERE input_tokens > 0 AND input_chars > 0
"""

_MEMORY_READ = f"""
SELECT 0, s.summary, s.covers_id, s.created_at, u.tokens, u.chars
FROM ({_DENSITY}) AS u
LEFT JOIN (SELECT summary, covers_id, created_at FROM {SUMMARIES} WHERE session_id = ?1
           ORDER BY covers_id DESC LIMIT 1) AS s ON 1
UNION ALL
SELECT * FROM (
    SELECT 1, id, message_data, NULL, NULL, NULL FROM {MESSAGES}
    WHERE session_id = ?1
      AND id > coalesce((SELECT max(covers_id) FROM {SUMMARIES} WHERE session_id = ?1), 0)
    ORDER BY id DESC LIMIT ?3)
"""
_MEMORY_READ_NO_DENSITY = _MEMORY_READ.replace(
    f"FROM ({_DENSITY}) AS u", "FROM (SELECT NULL AS tokens, NULL AS chars) AS u"
)


class StoreReadOnlyError(RuntimeError):
    """A write was attempted on a store opened read-only."""


class SQLiteStore(PagedReads):
    """Conversation memory for every thread, in one SQLite file (or in memory).

    Use `await SQLiteStore.open(path)` (or `async with`), then `session(session_id)` for an
    SDK `Session`, and the bot-level operations below for commands.
    """

    def __init__(
        self,
        path: str,
        reader: aiosqlite.Connection,
        writer: Writer | None,
        connections: Sequence[aiosqlite.Connection],
    ) -> None:
        """Prefer `open()`; this only assembles already-opened parts."""
        self.path = path
        self._reader = reader
        self._writer = writer
        self._connections = tuple(connections)
        # One process owns the file, so the events it has taken are all there is to know.
        self._deliveries = RecentKeys()

    @classmethod
    async def open(
        cls, path: str | Path = IN_MEMORY, *, read_only: bool = False, busy_timeout: float = 5.0
    ) -> SQLiteStore:
        """Open (creating if needed) the database at `path`; `":memory:"` for a temporary one.

        Args:
            path: A file path, or `":memory:"`.
            read_only: Open an existing file without the ability to change it (admin tools).
            busy_timeout: Seconds to wait for another process's write lock before failing.
        """
        path = str(path)
        if path == IN_MEMORY:
            conn = await aiosqlite.connect(IN_MEMORY, timeout=busy_timeout, isolation_level=None)
            try:
                await ensure_schema(conn)
            except BaseException:
                await conn.close()
                raise
            return cls(path, conn, Writer(conn), [conn])
        if read_only:
            uri = f"file:{quote(path)}?mode=ro"  # SQLite resolves relative URI paths itself
            reader = await aiosqlite.connect(uri, uri=True, timeout=busy_timeout)
            return cls(path, reader, None, [reader])

        await asyncio.to_thread(Path(path).parent.mkdir, parents=True, exist_ok=True)
        # Autocommit mode: the writer opens its transactions itself (see writer.py).
        write_conn = await aiosqlite.connect(path, timeout=busy_timeout, isolation_level=None)
        opened = [write_conn]
        try:
            await write_conn.execute("PRAGMA journal_mode=WAL")
            # FULL makes each commit durable across power loss, not just process crashes.
            await write_conn.execute("PRAGMA synchronous=FULL")
            await ensure_schema(write_conn)
            reader = await aiosqlite.connect(path, timeout=busy_timeout)
            opened.append(reader)
        except BaseException:
            for conn in opened:
                await conn.close()
            raise
        store = cls(path, reader, Writer(write_conn), opened)
        try:
            # Messages written while the bot was away (or before the index existed) become
            # searchable now, not at the first search.
            await store.index_for_search()
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Finish queued writes, then close every connection."""
        try:
            if self._writer is not None:
                await self._writer.close()
        finally:
            for conn in reversed(self._connections):
                await conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def location(self) -> str:
        return self.path

    # ----- coordination ------------------------------------------------------------------

    def hold_thread(self, session_id: str, *, wait: float) -> AbstractAsyncContextManager[None]:
        """Nothing to hold: one process serves a SQLite file, and the core's own per-thread
        lock already serialises its turns."""
        return nullcontext()

    async def first_delivery(self, key: str) -> bool:
        return self._deliveries.first_time(key)

    def delivered(self, key: str) -> bool:
        return key in self._deliveries

    # ----- reads -------------------------------------------------------------------------

    async def read_memory(self, session_id: str, *, density: bool = True) -> MemoryRead:
        """The thread's summary, measured density and newest items after the summary.

        One query, so planning a turn costs one trip to the database however the thread is
        kept; a window longer than the first page continues with `read_window`. Without
        `density` (the caller has a recent figure) the usage is not read.
        """
        query = _MEMORY_READ if density else _MEMORY_READ_NO_DENSITY
        rows = list(await self._reader.execute_fetchall(query, (session_id, _MEASURED_ROWS, _PAGE)))
        state = next(row for row in rows if row[0] == 0)
        _, text, covers_id, created_at, tokens, chars = state
        summary = (
            None if text is None else Summary(text, int(covers_id), parse_timestamp(created_at))
        )
        page = sorted((row[1], row[2]) for row in rows if row[0] == 1)
        newest = list(window_items(page))
        measured = float(tokens) / float(chars) if tokens and chars else None
        below = int(page[0][0]) if len(page) == _PAGE else None
        return MemoryRead(summary, measured, newest, continue_below=below)

    async def _page(
        self,
        session_id: str,
        *,
        after_id: int,
        before_id: int | None,
        limit: int,
        newest_first: bool,
    ) -> list[Any]:
        return list(
            await self._reader.execute_fetchall(
                f"SELECT id, message_data FROM {MESSAGES} WHERE session_id = ? AND id > ? "
                f"AND (?3 IS NULL OR id < ?3) ORDER BY id {'DESC' if newest_first else 'ASC'} "
                "LIMIT ?",
                (session_id, after_id, before_id, limit),
            )
        )

    async def count_messages(self, session_id: str, *, up_to: int) -> int:
        """How many people's and the bot's messages a thread holds up to an item ID."""
        rows = await self._reader.execute_fetchall(
            f"SELECT count(*) FROM {MESSAGES} WHERE session_id = ? AND id <= ? "
            f"AND {_ROLE} IN ('user', 'assistant')",
            (session_id, up_to),
        )
        return int(next(iter(rows))[0])

    async def history(self, session_id: str, *, limit: int, offset: int = 0) -> list[StoredItem]:
        """Up to `limit` stored items, skipping the newest `offset`; oldest first."""
        rows = await self._reader.execute_fetchall(
            f"SELECT {_COLUMNS} FROM {MESSAGES} WHERE session_id = ? "
            "ORDER BY id DESC LIMIT ? OFFSET ?",
            (session_id, limit, offset),
        )
        return decode_stored(reversed(list(rows)), parse_timestamp)

    async def count_items(self, session_id: str) -> int:
        """How many items a thread holds."""
        rows = await self._reader.execute_fetchall(
            f"SELECT count(*) FROM {MESSAGES} WHERE session_id = ?", (session_id,)
        )
        return int(next(iter(rows))[0])

    async def has_items(self, session_id: str) -> bool:
        """Whether a thread holds anything, at the cost of one index probe."""
        rows = await self._reader.execute_fetchall(
            f"SELECT EXISTS (SELECT 1 FROM {MESSAGES} WHERE session_id = ?)", (session_id,)
        )
        return bool(next(iter(rows))[0])

    async def ping(self) -> None:
        """Read the schema's first page through the reader, so a file gone bad fails it."""
        await self._reader.execute_fetchall("SELECT 1 FROM sqlite_master LIMIT 1")

    async def list_sessions(self) -> list[SessionInfo]:
        """Every thread with stored memory, most recently active first."""
        rows = await self._reader.execute_fetchall(
            f"SELECT s.session_id, count(m.id), s.created_at, s.updated_at FROM {SESSIONS} s "
            f"LEFT JOIN {MESSAGES} m ON m.session_id = s.session_id "
            "GROUP BY s.session_id ORDER BY s.updated_at DESC, s.session_id"
        )
        return [
            SessionInfo(sid, int(count), parse_timestamp(created), parse_timestamp(updated))
            for sid, count, created, updated in rows
        ]

    # ----- writes ------------------------------------------------------------------------

    async def append(
        self,
        session_id: str,
        items: Sequence[Item],
        *,
        author: Author | None = None,
        usage: Usage | None = None,
        replace_from: int | None = None,
        settles: str | None = None,
    ) -> None:
        """Add items to a thread in one durable transaction.

        Args:
            session_id: The thread.
            items: SDK input items, in order.
            author: Recorded beside each user message, for `/history`.
            usage: What producing the items cost, recorded in the same transaction.
            replace_from: First delete the thread's items from this ID on, in the same
                transaction (a turn that popped stored items before it committed).
            settles: A pending approval this turn finishes, deleted in the same transaction.
        """
        rows = encode_rows(session_id, items, author, usage)
        writer = self._require_writer()
        if replace_from is None and settles is None:
            await writer.append(rows)
            return

        async def replace_tail(conn: aiosqlite.Connection) -> None:
            if replace_from is not None:
                await conn.execute(
                    f"DELETE FROM {MESSAGES} WHERE session_id = ? AND id >= ?",
                    (session_id, replace_from),
                )
            if settles is not None:
                await conn.execute(f"DELETE FROM {APPROVALS} WHERE approval_id = ?", (settles,))
            await insert_rows(conn, rows)

        await writer.run(replace_tail)

    async def record_usage(
        self, session_id: str, usage: Usage, *, kind: str, author: Author | None = None
    ) -> None:
        """Record a model call made outside a turn (a summary), for cost accounting."""

        async def record(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                f"INSERT INTO {USAGE} (session_id, author_id, kind, model, input_tokens, "
                "cached_tokens, output_tokens, input_chars) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id,
                    author.id if author else None,
                    kind,
                    usage.model,
                    usage.input_tokens,
                    usage.cached_tokens,
                    usage.output_tokens,
                    usage.input_chars,
                ),
            )

        await self._require_writer().run(record)

    async def thread_usage(self, session_id: str) -> UsageTotals:
        rows = await self._reader.execute_fetchall(
            usage_sql.thread_totals(usage_sql.SQLITE), (session_id,)
        )
        return usage_sql.totals_of(next(iter(rows), None))

    async def person_usage(self, platform: str, user_id: str, *, since: datetime) -> UsageTotals:
        rows = await self._reader.execute_fetchall(
            usage_sql.person_totals(usage_sql.SQLITE),
            (user_id, format_timestamp(since), f"{platform}:"),
        )
        return usage_sql.totals_of(next(iter(rows), None))

    async def usage_report(
        self, by: UsageGrouping, *, since: datetime | None = None
    ) -> list[UsageLine]:
        query = usage_sql.report(usage_sql.SQLITE, by, since=since is not None)
        params = () if since is None else (format_timestamp(since),)
        return usage_sql.lines_of(await self._reader.execute_fetchall(query, params))

    # ----- summaries and search --------------------------------------------------------------

    async def save_summary(
        self, session_id: str, text: str, *, covers_id: int, replaces: int | None
    ) -> bool:
        """Store a new summary, unless the thread changed under it; says whether it was stored.

        It is stored only if the summary it was built on (`replaces`, a `covers_id`, or None
        for none) is still the newest and the last message it covers still exists: a /forget
        or /undo while it was being written makes it void.
        """

        async def save(conn: aiosqlite.Connection) -> bool:
            rows = list(
                await conn.execute_fetchall(
                    f"SELECT (SELECT max(covers_id) FROM {SUMMARIES} WHERE session_id = ?1), "
                    f"EXISTS (SELECT 1 FROM {MESSAGES} WHERE session_id = ?1 AND id = ?2)",
                    (session_id, covers_id),
                )
            )
            newest, exists = rows[0]
            if newest != replaces or not exists:
                return False
            await conn.execute(
                f"INSERT INTO {SUMMARIES} (session_id, covers_id, summary) VALUES (?, ?, ?)",
                (session_id, covers_id, text),
            )
            await conn.execute(
                f"DELETE FROM {SUMMARIES} WHERE session_id = ?1 AND covers_id NOT IN ("
                f"SELECT covers_id FROM {SUMMARIES} WHERE session_id = ?1 "
                "ORDER BY covers_id DESC LIMIT ?2)",
                (session_id, _KEPT_SUMMARIES),
            )
            return True

        return await self._require_writer().run(save)

    async def search(self, session_id: str, query: str, *, limit: int) -> list[StoredItem]:
        """This thread's messages that best match the words of `query`, best first.

        Messages with every word (or word prefix) come first, then those with some of them.
        Any text is a valid query: its words are matched, never parsed as FTS5 syntax. Only
        `session_id`'s messages can ever be returned.
        """
        words = [f'"{word}"*' for word in _WORD.findall(query)[:32]]
        if words:
            await self.index_for_search()
        found: list[StoredItem] = []
        for joiner in (" AND ", " OR ") if len(words) > 1 else (" ",):
            if len(found) >= limit or not words:
                break
            rows = await self._reader.execute_fetchall(
                f"SELECT m.id, m.message_data, m.author_id, m.author_name, m.created_at "
                f"FROM {SEARCH} JOIN {MESSAGES} AS m ON m.id = {SEARCH}.rowid "
                f"WHERE {SEARCH} MATCH ? AND m.session_id = ? ORDER BY {SEARCH}.rank LIMIT ?",
                (joiner.join(words), session_id, limit),
            )
            seen = {stored.id for stored in found}
            found += [
                stored for stored in decode_stored(rows, parse_timestamp) if stored.id not in seen
            ]
        return found[:limit]

    async def index_for_search(self) -> None:
        """Bring the search index up to date with every stored message.

        Runs in batches, each its own transaction queued between turns' writes, so a large
        backlog (a file from before the index existed) never holds a turn up for long.
        """
        writer = self._require_writer()
        while True:
            through, current = await writer.run(index_new_messages)
            if current:
                return
            logger.info("Indexed messages up to #%d for search; continuing", through)

    async def pop_item(self, session_id: str) -> Item | None:
        """Remove and return a thread's newest item (skipping unreadable rows, as the SDK does)."""

        async def pop(conn: aiosqlite.Connection) -> Item | None:
            while True:
                rows = list(
                    await conn.execute_fetchall(
                        f"DELETE FROM {MESSAGES} WHERE id = (SELECT id FROM {MESSAGES} "
                        "WHERE session_id = ? ORDER BY id DESC LIMIT 1) RETURNING message_data",
                        (session_id,),
                    )
                )
                if not rows:
                    return None
                decoded = decode_items(rows)
                if decoded:
                    return decoded[0]

        return await self._require_writer().run(pop)

    async def clear(self, session_id: str) -> ClearResult:
        """Forget a thread entirely; says how many items and messages went."""

        async def clear(conn: aiosqlite.Connection) -> ClearResult:
            rows = list(
                await conn.execute_fetchall(
                    f"SELECT count(*), count(CASE WHEN {_ROLE} IN ('user', 'assistant') "
                    f"THEN 1 END) FROM {MESSAGES} WHERE session_id = ?",
                    (session_id,),
                )
            )
            await conn.execute(f"DELETE FROM {MESSAGES} WHERE session_id = ?", (session_id,))
            await conn.execute(f"DELETE FROM {SESSIONS} WHERE session_id = ?", (session_id,))
            await conn.execute(f"DELETE FROM {APPROVALS} WHERE session_id = ?", (session_id,))
            items, messages = rows[0]
            return ClearResult(items=int(items), messages=int(messages))

        return await self._require_writer().run(clear)

    # ----- turns paused for an approval ------------------------------------------------------

    async def save_approval(self, approval: PendingApproval) -> None:
        async def save(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                f"INSERT OR REPLACE INTO {APPROVALS} ({APPROVAL_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    approval.approval_id,
                    approval.session_id,
                    approval.platform,
                    approval.requester.id,
                    approval.requester.name,
                    approval.calls,
                    approval.state,
                    approval.items,
                    approval.instructions,
                    format_timestamp(approval.expires_at),
                    approval.address,
                ),
            )

        await self._require_writer().run(save)

    async def approval(self, approval_id: str) -> PendingApproval | None:
        return await self._one_approval("approval_id", approval_id)

    async def approval_in(self, session_id: str) -> PendingApproval | None:
        return await self._one_approval("session_id", session_id)

    async def _one_approval(self, column: str, value: str) -> PendingApproval | None:
        rows = list(
            await self._reader.execute_fetchall(
                f"SELECT {APPROVAL_COLUMNS} FROM {APPROVALS} WHERE {column} = ?", (value,)
            )
        )
        return approval_of(rows[0], parse_timestamp) if rows else None

    async def address_approval(self, approval_id: str, address: str) -> None:
        async def address_it(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                f"UPDATE {APPROVALS} SET address = ? WHERE approval_id = ?", (address, approval_id)
            )

        await self._require_writer().run(address_it)

    async def due_approvals(self, now: datetime) -> list[PendingApproval]:
        rows = await self._reader.execute_fetchall(
            f"SELECT {APPROVAL_COLUMNS} FROM {APPROVALS} WHERE expires_at <= ? ORDER BY expires_at",
            (format_timestamp(now),),
        )
        return [approval_of(row, parse_timestamp) for row in rows]

    async def undo_last_exchange(self, session_id: str) -> list[StoredItem]:
        """Remove the last user message and everything after it, atomically.

        Returns the removed items, oldest first; empty when there is no user message to undo.
        The statement walks back from the newest row only as far as that user message.
        """

        async def undo(conn: aiosqlite.Connection) -> list[StoredItem]:
            rows = await conn.execute_fetchall(
                f"DELETE FROM {MESSAGES} WHERE session_id = ?1 AND id >= ("
                f"SELECT id FROM {MESSAGES} WHERE session_id = ?1 AND {_ROLE} = 'user' "
                f"ORDER BY id DESC LIMIT 1) RETURNING {_COLUMNS}",
                (session_id,),
            )
            return sorted(decode_stored(rows, parse_timestamp), key=lambda stored: stored.id)

        return await self._require_writer().run(undo)

    async def delete_idle(self, idle_for: timedelta, *, now: datetime | None = None) -> int:
        """Delete threads untouched for longer than `idle_for`; returns how many went."""
        cutoff = format_timestamp((now or datetime.now(UTC)) - idle_for)

        async def sweep(conn: aiosqlite.Connection) -> int:
            await conn.execute(
                f"DELETE FROM {MESSAGES} WHERE session_id IN "
                f"(SELECT session_id FROM {SESSIONS} WHERE updated_at < ?)",
                (cutoff,),
            )
            cursor = await conn.execute(f"DELETE FROM {SESSIONS} WHERE updated_at < ?", (cutoff,))
            return cursor.rowcount

        return await self._require_writer().run(sweep)

    # ----- moving memory ---------------------------------------------------------------

    async def dump_thread(self, session_id: str) -> ThreadDump:
        """Everything stored for a thread, exactly as stored."""
        reader = self._reader
        sessions = list(
            await reader.execute_fetchall(
                f"SELECT created_at, updated_at FROM {SESSIONS} WHERE session_id = ?",
                (session_id,),
            )
        )
        times = sessions[0] if sessions else None
        rows = await reader.execute_fetchall(
            f"SELECT id, message_data, author_id, author_name, created_at, {_USAGE}, asked_by "
            f"FROM {MESSAGES} WHERE session_id = ? ORDER BY id",
            (session_id,),
        )
        summaries = await reader.execute_fetchall(
            f"SELECT covers_id, summary, created_at FROM {SUMMARIES} WHERE session_id = ? "
            "ORDER BY covers_id",
            (session_id,),
        )
        ledger = await reader.execute_fetchall(
            f"SELECT kind, author_id, {_USAGE}, created_at FROM {USAGE} "
            "WHERE session_id = ? ORDER BY id",
            (session_id,),
        )
        return thread_dump(session_id, times, rows, summaries, ledger, parse_timestamp)

    async def load_thread(self, dump: ThreadDump) -> bool:
        """Store a dumped thread under its own ID, in one transaction, unless it is here."""

        async def load(conn: aiosqlite.Connection) -> bool:
            present = list(
                await conn.execute_fetchall(
                    f"SELECT EXISTS (SELECT 1 FROM {SESSIONS} WHERE session_id = ?1) "
                    f"OR EXISTS (SELECT 1 FROM {USAGE} WHERE session_id = ?1)",
                    (dump.session_id,),
                )
            )
            if present[0][0]:
                return False
            await conn.execute(
                f"INSERT INTO {SESSIONS} (session_id, created_at, updated_at) VALUES (?, ?, ?)",
                (
                    dump.session_id,
                    format_timestamp(dump.created_at),
                    format_timestamp(dump.updated_at),
                ),
            )
            new_ids: dict[int, int] = {}
            for message in dump.messages:
                usage = message.usage
                cursor = await conn.execute(
                    f"INSERT INTO {MESSAGES} (session_id, message_data, author_id, author_name, "
                    f"created_at, {_USAGE}, asked_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        dump.session_id,
                        message.data,
                        message.author.id if message.author else None,
                        message.author.name if message.author else None,
                        format_timestamp(message.created_at),
                        *usage_values(usage),
                        message.asked_by,
                    ),
                )
                new_ids[message.id] = int(cursor.lastrowid or 0)
            # The trigger touched the thread as each row went in; put its times back.
            await conn.execute(
                f"UPDATE {SESSIONS} SET updated_at = ? WHERE session_id = ?",
                (format_timestamp(dump.updated_at), dump.session_id),
            )
            await conn.executemany(
                f"INSERT INTO {SUMMARIES} (session_id, covers_id, summary, created_at) "
                "VALUES (?, ?, ?, ?)",
                [
                    (dump.session_id, new_ids[s.covers_id], s.text, format_timestamp(s.created_at))
                    for s in dump.summaries
                    if s.covers_id in new_ids
                ],
            )
            await conn.executemany(
                f"INSERT INTO {USAGE} (session_id, author_id, kind, {_USAGE}, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        dump.session_id,
                        entry.author_id,
                        entry.kind,
                        *usage_values(entry.usage),
                        format_timestamp(entry.created_at),
                    )
                    for entry in dump.ledger
                ],
            )
            return True

        return await self._require_writer().run(load)

    async def forget_user(self, platform: str, user_id: str, *, dry_run: bool) -> ForgetReport:
        """Delete one person's messages and the turns that answered them (see `Store`).

        Each thread is planned and changed inside its own transaction on the writer, so a turn
        stored meanwhile is wholly seen or not at all. A dry run only reads, on the reader, so
        it works on a file opened read-only.
        """
        prefix = platform_prefix(platform)
        threads = await self._reader.execute_fetchall(
            f"SELECT session_id FROM {MESSAGES} WHERE substr(session_id, 1, ?1) = ?2 "
            "AND (author_id = ?3 OR asked_by = ?3) "
            f"UNION SELECT session_id FROM {USAGE} WHERE substr(session_id, 1, ?1) = ?2 "
            "AND author_id = ?3 "
            f"UNION SELECT session_id FROM {APPROVALS} WHERE platform = ?4 AND requester_id = ?3",
            (len(prefix), prefix, user_id, platform),
        )

        async def forget_in(conn: aiosqlite.Connection, session_id: str) -> ForgetReport:
            rows = await conn.execute_fetchall(
                f"SELECT {ERASURE_COLUMNS.format(role=_ROLE)} FROM {MESSAGES} "
                "WHERE session_id = ? ORDER BY id",
                (session_id,),
            )
            plan = plan_erasure(rows, user_id)
            # Whose pending approvals go: theirs, and every one in a thread losing rows.
            approvals_where = (
                f"FROM {APPROVALS} WHERE session_id = ?1 "
                "AND (?2 OR (platform = ?3 AND requester_id = ?4))"
            )
            approval_args = (session_id, bool(plan.ids), platform, user_id)
            counts = list(
                await conn.execute_fetchall(
                    f"SELECT (SELECT count(*) FROM {SUMMARIES} WHERE session_id = ?1 "
                    "AND covers_id >= ?5), "
                    f"(SELECT count(*) {approvals_where}), "
                    f"(SELECT count(*) FROM {USAGE} WHERE session_id = ?1 AND author_id = ?4)",
                    (*approval_args, plan.first),
                )
            )
            summaries, approvals, named = (int(count) for count in counts[0])
            usage_records = named + plan.ledger_rows + plan.unlinked
            if not dry_run:
                # The delete triggers drop the summaries covering these rows, unindex them,
                # and copy each turn's cost into the ledger under whom it answered; so the
                # ledger is anonymised after it.
                await conn.execute(
                    f"DELETE FROM {MESSAGES} WHERE id IN (SELECT value FROM json_each(?))",
                    (json.dumps(plan.ids),),
                )
                if plan.ids:
                    # A thread left empty goes whole: its ID may be made of theirs
                    # (BOT_MEMORY_SCOPE=user).
                    await conn.execute(
                        f"DELETE FROM {SESSIONS} WHERE session_id = ?1 "
                        f"AND NOT EXISTS (SELECT 1 FROM {MESSAGES} WHERE session_id = ?1)",
                        (session_id,),
                    )
                dropped = await conn.execute(f"DELETE {approvals_where}", approval_args)
                ledger = await conn.execute(
                    f"UPDATE {USAGE} SET author_id = NULL WHERE session_id = ? AND author_id = ?",
                    (session_id, user_id),
                )
                kept = await conn.execute(
                    f"UPDATE {MESSAGES} SET asked_by = NULL WHERE session_id = ? AND asked_by = ?",
                    (session_id, user_id),
                )
                approvals, usage_records = dropped.rowcount, ledger.rowcount + kept.rowcount
            return plan.report(
                session_id, summaries=summaries, approvals=approvals, usage_records=usage_records
            )

        report = ForgetReport()
        sessions = sorted(row[0] for row in threads)
        if dry_run:
            for session_id in sessions:
                report += await forget_in(self._reader, session_id)
            return report
        writer = self._require_writer()
        # Deleted rows are overwritten, not just unlinked (builds default either way), for
        # this operation only: what someone asked to have deleted should not stay readable
        # in the file's free pages.
        was = await writer.run(partial(_secure_delete, on=True))
        try:
            for session_id in sessions:
                report += await writer.run(partial(forget_in, session_id=session_id))
            if report.messages:
                # FTS5 hides a deleted row's words behind a tombstone and drops them only
                # when it merges its segments: merging now leaves no word of theirs in it.
                await writer.run(_merge_search_index)
        finally:
            await writer.run(partial(_secure_delete, on=was))
        return report

    def _require_writer(self) -> Writer:
        if self._writer is None:
            raise StoreReadOnlyError(f"{self.path} was opened read-only")
        return self._writer


async def _secure_delete(conn: aiosqlite.Connection, *, on: bool | int) -> int:
    """Set the connection's `secure_delete` (see `forget_user`); returns what it was."""
    rows = list(await conn.execute_fetchall("PRAGMA secure_delete"))
    await conn.execute(f"PRAGMA secure_delete = {int(on)}")
    return int(rows[0][0])


async def _merge_search_index(conn: aiosqlite.Connection) -> None:
    await conn.execute(f"INSERT INTO {SEARCH} ({SEARCH}) VALUES ('optimize')")


__all__ = ["IN_MEMORY", "SQLiteStore", "StoreClosedError", "StoreReadOnlyError"]
