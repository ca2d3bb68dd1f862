"""The single writer: every mutation of the database goes through here, in arrival order.

SQLite allows one writer at a time and a shared connection cannot interleave transactions, so
mutations are queued and run by one task. Appends that arrive while a transaction is being
made durable wait in the queue and then share the *next* transaction: with many threads busy,
one fsync covers many turns (group commit), and each caller still returns only after its own
rows are durable. Under no load a batch is a single append, so nothing waits for company.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiosqlite

from .schema import MESSAGES, TURN_ROWS, USAGE

logger = logging.getLogger(__name__)

T = TypeVar("T")

Row = tuple[str, str, str | None, str | None]
"""(session_id, message_data, author_id, author_name) for one new message row."""

UsageRow = tuple[str, str | None, str, str | None, int, int, int, int, int]
"""(session_id, author_id, kind, model, requests, input, cached, output tokens, input chars)."""

_INSERT_TURN_ROWS = (
    f"INSERT INTO {TURN_ROWS} (session_id, message_data, author_id, author_name, kind, model, "
    "requests, input_tokens, cached_tokens, output_tokens, input_chars) VALUES "
)
_TURN_ROW_PLACEHOLDERS = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_MAX_TURN_ROWS_PER_STATEMENT = 80
"""Rows one insert through the turn view may carry (11 parameters each, under 999)."""
_NO_USAGE = (None,) * 7

_INSERT_USAGE = (
    f"INSERT INTO {USAGE} (session_id, author_id, kind, model, requests, input_tokens, "
    "cached_tokens, output_tokens, input_chars) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_INSERT_MESSAGES = (
    f"INSERT INTO {MESSAGES} (session_id, message_data, author_id, author_name) VALUES "
)
_ROW_PLACEHOLDERS = "(?, ?, ?, ?)"
_MAX_ROWS_PER_STATEMENT = 200
"""Rows one multi-row INSERT may carry (4 parameters each, under SQLite's oldest 999 limit)."""


class StoreClosedError(RuntimeError):
    """The store was closed; no more writes are accepted."""


@dataclass
class _Append:
    rows: Sequence[Row]
    usage: Sequence[UsageRow]
    future: asyncio.Future[None]


@dataclass
class _Exclusive:
    operation: Callable[[aiosqlite.Connection], Awaitable[Any]]
    future: asyncio.Future[Any]
    name: str = field(default="write")


class Writer:
    """Owns the write connection's transactions. See the module docstring for why."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._queue: deque[_Append | _Exclusive] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    async def append(self, rows: Sequence[Row], usage: Sequence[UsageRow] = ()) -> None:
        """Insert rows (and what they cost) in one transaction, possibly shared with others."""
        if not rows and not usage:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._submit(_Append(rows, usage, future))
        await future

    async def run(self, operation: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `operation` alone in its own transaction and commit it."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._submit(_Exclusive(operation, future))
        return await future

    async def close(self) -> None:
        """Refuse new writes and wait for the queued ones to finish."""
        self._closed = True
        if self._worker is not None:
            await asyncio.shield(self._worker)

    def _submit(self, job: _Append | _Exclusive) -> None:
        if self._closed:
            raise StoreClosedError("the store is closed")
        self._queue.append(job)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="store-writer")

    async def _work(self) -> None:
        # The caller of a write may be cancelled while it waits; the write still runs to its
        # end here, so a turn is either wholly stored or not at all.
        batch: list[_Append] = []
        job: _Append | _Exclusive | None = None
        try:
            while self._queue:
                job = self._queue.popleft()
                if isinstance(job, _Append):
                    batch = [job]
                    while self._queue and isinstance(self._queue[0], _Append):
                        batch.append(self._queue.popleft())  # type: ignore[arg-type]
                    await self._commit_appends(batch)
                else:
                    await self._commit_exclusive(job)
                batch, job = [], None
        except BaseException:
            # Only cancellation or a dying loop gets here; nobody may be left waiting forever.
            for stranded in [*batch, *([job] if job else []), *self._queue]:
                stranded.future.cancel()
            self._queue.clear()
            raise

    async def _commit_appends(self, batch: list[_Append]) -> None:
        try:
            await self._insert(
                [row for job in batch for row in job.rows],
                [row for job in batch for row in job.usage],
            )
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0].future, exc)
                return
            # One bad append must not sink the others that happened to share its transaction.
            logger.warning(
                "A shared write failed (%s); retrying its %d parts alone", exc, len(batch)
            )
            for job in batch:
                try:
                    await self._insert(job.rows, job.usage)
                except Exception as single_exc:
                    _fail(job.future, single_exc)
                else:
                    _succeed(job.future, None)
        else:
            for job in batch:
                _succeed(job.future, None)

    async def _insert(self, rows: Sequence[Row], usage: Sequence[UsageRow]) -> None:
        # The connection is in autocommit mode, so one statement is one atomic, durable
        # transaction and costs a single hop to the connection's thread (BEGIN, INSERT and
        # COMMIT issued separately would cost three). The schema's trigger touches the thread.
        if not usage and len(rows) <= _MAX_ROWS_PER_STATEMENT:
            await self._conn.execute(_insert_statement(len(rows)), _flatten(rows))
            return
        if len(rows) + len(usage) <= _MAX_TURN_ROWS_PER_STATEMENT:
            await self._conn.execute(*_turn_rows_statement(rows, usage))
            return
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
            await insert_rows(self._conn, rows)
            await insert_usage(self._conn, usage)
            await self._conn.commit()
        except BaseException:
            await self._rollback()
            raise

    async def _commit_exclusive(self, job: _Exclusive) -> None:
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
            result = await job.operation(self._conn)
            await self._conn.commit()
        except Exception as exc:
            await self._rollback()
            _fail(job.future, exc)
        except BaseException:
            await self._rollback()
            raise
        else:
            _succeed(job.future, result)

    async def _rollback(self) -> None:
        try:
            await self._conn.rollback()
        except Exception:
            logger.exception("Rolling back a failed write failed too")


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


async def insert_rows(conn: aiosqlite.Connection, rows: Sequence[Row]) -> None:
    """Insert message rows (their threads are touched by trigger), in the caller's transaction."""
    if rows:
        await conn.executemany(_insert_statement(1), rows)


async def insert_usage(conn: aiosqlite.Connection, usage: Sequence[UsageRow]) -> None:
    """Record what model calls cost, in the caller's transaction."""
    if usage:
        await conn.executemany(_INSERT_USAGE, usage)


def _turn_rows_statement(
    rows: Sequence[Row], usage: Sequence[UsageRow]
) -> tuple[str, list[str | int | None]]:
    """One insert of messages and usage rows through the schema's turn view, in order."""
    values: list[str | int | None] = []
    for row in rows:
        values += [*row, *_NO_USAGE]
    for session_id, author_id, *costs in usage:
        values += [session_id, None, author_id, None, *costs]
    count = len(rows) + len(usage)
    return _INSERT_TURN_ROWS + ", ".join([_TURN_ROW_PLACEHOLDERS] * count), values


def _insert_statement(count: int) -> str:
    return _INSERT_MESSAGES + ", ".join([_ROW_PLACEHOLDERS] * count)


def _flatten(rows: Sequence[Row]) -> list[str | None]:
    return [value for row in rows for value in row]
