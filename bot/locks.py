"""One turn at a time per thread, any number of threads at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .storage import ThreadBusyError


class KeyedLock:
    """A lock per key, created on first use and dropped when nobody holds or waits for it.

    Dropping idle locks keeps memory flat however many threads the bot has ever seen.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str, *, until: float | None = None) -> AsyncIterator[None]:
        """Wait for `key`'s turn, run the block, then let the next waiter in (FIFO).

        With `until` (an event-loop time), give up waiting then with `ThreadBusyError`.
        """
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            try:
                async with asyncio.timeout_at(until):
                    await lock.acquire()
            except TimeoutError:
                raise ThreadBusyError(f"{key} stayed busy") from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def busy(self, key: str) -> bool:
        """Whether a turn for `key` is running or waiting."""
        return key in self._locks

    def __len__(self) -> int:
        return len(self._locks)
