"""Claiming a message among workers, so that the less busy one answers it.

Slack sends a mention twice (`app_mention` and `message`) and a balancer may hand the two to
two workers; whichever claims first answers, and a strict round-robin gives one worker the
first of every pair, so one worker would take nearly every turn. A worker whose claims are
contended (others lately took messages it was sent too) waits a moment per turn in flight
before claiming, which hands the message to the one with fewer: the fleet shares the work.
Nothing waits on SQLite, for a worker on its own, or with no turn in flight.
"""

from __future__ import annotations

import asyncio
from typing import Final

from .storage import Store

YIELD_PER_TURN: Final = 0.0002
"""Seconds a contended worker waits before claiming, for each turn it has in flight."""
YIELD_MAX: Final = 0.25


async def claim(store: Store, key: str, *, in_flight: int) -> bool:
    """True when this worker takes the message `key` names (the first claim of it anywhere)."""
    if in_flight and not store.delivered(key) and store.claims_contended:
        await asyncio.sleep(min(YIELD_MAX, YIELD_PER_TURN * in_flight))
    return await store.first_delivery(key)
