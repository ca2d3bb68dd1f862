"""Fencing: what the task holding a thread writes is stored only while the thread's epoch is
still the one its lock was taken with (the locker advances it on every take, `locker.py`).

The check runs under the epoch row's lock in the writing transaction, and a worker taking the
thread must wait for that lock to advance the epoch: either the write commits first and the
taker plans from it, or the epoch has moved and the write is refused. No thread ever holds
two interleaved turns, even when a lock was lost with its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from ..failures import ThreadLostError
from .locker import Grant, Locker
from .schema import FENCES, Connection

_EPOCH = f"SELECT epoch FROM {FENCES} WHERE lock_key = $1 FOR UPDATE"


def fence_row(key: str, epoch: str) -> str:
    """A query of the epoch row, locked, only while it still is `epoch` (both parameters, as
    `$n`): the CTE a one-statement write joins, so it stores nothing once it was taken over."""
    return f"SELECT lock_key FROM {FENCES} WHERE lock_key = {key} AND epoch = {epoch} FOR UPDATE"


def taken_over(thread: str) -> ThreadLostError:
    return ThreadLostError(f"{thread} was taken by another worker after its lock was lost")


class Holds:
    """Which task holds which thread in this worker, with the lock it took."""

    def __init__(self, locker: Locker | None) -> None:
        self._locker = locker
        self._grants: dict[tuple[asyncio.Task[Any] | None, str], Grant] = {}

    @contextlib.contextmanager
    def holding(self, thread: str, grant: Grant) -> Iterator[None]:
        """The calling task holds `thread` with `grant` for the block."""
        holder = (asyncio.current_task(), thread)
        self._grants[holder] = grant
        try:
            yield
        finally:
            del self._grants[holder]

    def of(self, thread: str | None) -> Grant | None:
        """The lock on `thread` that the calling task holds, if it holds one."""
        if thread is None or not self._grants:
            return None
        return self._grants.get((asyncio.current_task(), thread))

    def check_kept(self, grant: Grant, thread: str) -> None:
        """Refuse at once a write whose lock this worker knows it lost."""
        if self._locker is not None and self._locker.lost(grant):
            raise ThreadLostError(f"the lock on {thread} was lost with its connection")

    async def check(self, conn: Connection, grant: Grant, thread: str) -> None:
        """Inside a transaction: go on only while `grant` is still the thread's newest."""
        self.check_kept(grant, thread)
        if await conn.fetchval(_EPOCH, grant.key) != grant.epoch:
            raise taken_over(thread)
