"""Unit tests for the pre-turn guards and the keyed lock."""

from __future__ import annotations

import asyncio
import gc

import pytest

from bot.guards import RateLimiter
from bot.locks import KeyedLock
from bot.storage import ThreadBusyError
from bot.storage.deliveries import RecentKeys


def test_recent_ids_drop_repeats_and_forget_the_oldest() -> None:
    ids = RecentKeys(capacity=2)
    assert ids.first_time("a")
    assert not ids.first_time("a")
    assert ids.first_time("b")
    assert ids.first_time("c")  # pushes "a" out
    assert ids.first_time("a")


def test_rate_limiter_uses_a_sliding_minute() -> None:
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.wait_time("ann") == 0
    now[0] = 10
    assert limiter.wait_time("ann") == 0
    now[0] = 20
    assert limiter.wait_time("ann") == 40  # the first message leaves the window at t=60
    assert limiter.wait_time("bob") == 0
    now[0] = 60
    assert limiter.wait_time("ann") == 0


def test_rate_limiter_off_when_zero() -> None:
    limiter = RateLimiter(0)
    assert all(limiter.wait_time("ann") == 0 for _ in range(1000))


def live_locks() -> int:
    """How many `asyncio.Lock`s exist: a `KeyedLock` keeps none once nobody holds or waits."""
    gc.collect()
    return sum(type(thing) is asyncio.Lock for thing in gc.get_objects())


async def test_keyed_lock_serializes_one_key_and_cleans_up() -> None:
    lock = KeyedLock()
    order: list[str] = []
    before = live_locks()

    async def hold(key: str, name: str) -> None:
        async with lock.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(hold("t", "a"), hold("t", "b"), hold("u", "c"))
    assert order.index("a-") < order.index("b+")
    assert order.index("c+") < order.index("a-")  # another key ran alongside
    for n in range(1_000):
        async with lock.hold(f"thread {n}"):
            pass
    assert live_locks() <= before


async def test_keyed_lock_gives_up_waiting_at_the_deadline() -> None:
    locks = KeyedLock()
    loop = asyncio.get_running_loop()
    before = live_locks()

    async def refused(until: float) -> None:
        with pytest.raises(ThreadBusyError):
            async with locks.hold("t", until=until):
                pass

    async with locks.hold("t"):
        # Each in a task of its own: a task keeps the error of its last cancellation, and with
        # it the frames (and the lock) of the wait it cancelled.
        await asyncio.create_task(refused(loop.time() + 0.05))
        await asyncio.create_task(refused(loop.time()))  # still held
    # The waiter that gave up left nothing behind: the key is free at once, and no lock stays.
    async with locks.hold("t", until=loop.time()):
        pass
    assert live_locks() <= before
