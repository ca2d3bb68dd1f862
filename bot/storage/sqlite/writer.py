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

from ..codec import Row
from ..layout import MESSAGES, USAGE_LIST

logger = logging.getLogger(__name__)

T = TypeVar("T")

_INSERT_MESSAGES = (
    f"INSERT INTO {MESSAGES} (session_id, message_data, author_id, author_name, {USAGE_LIST}, "
    "asked_by) VALUES "
)
_ROW_PLACEHOLDERS = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_MAX_ROWS_PER_STATEMENT = 90
"""Rows one multi-row INSERT may carry (11 parameters each, under SQLite's oldest 999 limit)."""


class StoreClosedError(RuntimeError):
    """The store was closed; no more writes are accepted."""


@dataclass
class _Append:
    rows: Sequence[Row]
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

    async def append(self, rows: Sequence[Row]) -> None:
        """Insert rows in one transaction (possibly shared with other appends)."""
        if not rows:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._submit(_Append(rows, future))
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
            await self._insert([row for job in batch for row in job.rows])
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
                    await self._insert(job.rows)
                except Exception as single_exc:
                    _fail(job.future, single_exc)
                else:
                    _succeed(job.future, None)
        else:
            for job in batch:
                _succeed(job.future, None)

    async def _insert(self, rows: Sequence[Row]) -> None:
        if len(rows) <= _MAX_ROWS_PER_STATEMENT:
            # The connection is in autocommit mode, so one statement is one atomic, durable
            # transaction and costs a single hop to the connection's thread (BEGIN, INSERT and
            # COMMIT issued separately would cost three). The schema's trigger touches the thread.
            await self._conn.execute(_insert_statement(len(rows)), _flatten(rows))
            return
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
            await insert_rows(self._conn, rows)
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


def _insert_statement(count: int) -> str:
    return _INSERT_MESSAGES + ", ".join([_ROW_PLACEHOLDERS] * count)


def _flatten(rows: Sequence[Row]) -> list[str | int | None]:
    return [value for row in rows for value in row]
