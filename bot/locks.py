"""One turn at a time per thread, any number of threads at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from .ops.metrics import Observer
from .storage import Store, ThreadBusyError


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


class ThreadHolds:
    """Holds a thread for a turn or a command, on this worker and against every other one."""

    def __init__(self, store: Store, observer: Observer, *, wait: float, model_slots: int) -> None:
        """
        Args:
            store: Holds the thread against other workers (`Store.hold_thread`).
            observer: Told how long each wait took.
            wait: Seconds a hold may wait in all before `ThreadBusyError`.
            model_slots: Turns that may run a model at once on this worker.
        """
        self._store = store
        self._observer = observer
        self._wait = wait
        self._threads = KeyedLock()
        self._model_slots = asyncio.Semaphore(model_slots)

    @asynccontextmanager
    async def hold(self, session_id: str, *, model_slot: bool = False) -> AsyncIterator[None]:
        """Hold the thread for the block (with a model slot, for a turn).

        This worker's own turns queue on an in-process lock first, so only the one about to
        run holds a model slot and asks other workers for the thread (PostgreSQL).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        observer = self._observer
        async with AsyncExitStack() as held:
            # One wait for the thread (this worker's queue, then other workers'), with the
            # wait for a model slot in between counted apart.
            with observer.waiting("thread") as thread_wait:
                await held.enter_async_context(self._threads.hold(session_id, until=deadline))
                if model_slot:
                    with thread_wait.paused(), observer.waiting("model_slot"):
                        await held.enter_async_context(self._model_slots)
                await held.enter_async_context(
                    self._store.hold_thread(session_id, wait=max(0.0, deadline - loop.time()))
                )
            yield
