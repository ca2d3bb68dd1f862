"""Claiming platform events across workers, so a message delivered twice is answered once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import asyncpg

from ..deliveries import RecentKeys
from ..failures import StoreUnavailableError
from .locker import Locker
from .schema import DELIVERIES, Connection

logger = logging.getLogger(__name__)

_DELIVERY_DAYS = 1
"""Platforms redeliver within minutes; a day of event keys is more than enough."""
_PRUNE_SECONDS = 3600.0
_CONTENDED_SECONDS = 60.0
"""How long after another worker took an event this one was sent too that claims count as
contended (and a busy worker lets the others claim first: `bot.claiming`)."""

_CLAIM = f"INSERT INTO {DELIVERIES} (key) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true"
_PRUNE = f"DELETE FROM {DELIVERIES} WHERE taken_at < now() - make_interval(days => $1)"


class EventClaims:
    """The `bot_deliveries` table, with this worker's recent keys in front of it."""

    def __init__(
        self,
        pooled: Callable[[], AbstractAsyncContextManager[Connection]],
        locker: Locker | None,
        recent: RecentKeys,
    ) -> None:
        """
        Args:
            pooled: A pooled connection for one use.
            locker: The lock connection, the fallback when the pool cannot get one.
            recent: The keys this worker has claimed already.
        """
        self._pooled = pooled
        self._locker = locker
        self._recent = recent
        self._pruned_at: float | None = None
        self._lost_at: float | None = None

    @property
    def contended(self) -> bool:
        """Whether another worker claimed an event this one was sent too, lately."""
        return self._lost_at is not None and time.monotonic() - self._lost_at < _CONTENDED_SECONDS

    async def first(self, key: str) -> bool:
        """True the first time any worker claims `key`.

        A message must be answered once even when the server has no connection to spare
        (Slack sends a mention twice, often to two workers): the claim then goes through the
        lock connection, open already. With the database wholly out of reach it falls back to
        this worker's own memory of keys; the turn then fails with its friendly line anyway.
        """
        if key in self._recent:
            return False
        try:
            async with self._pooled() as conn:
                await self._prune(conn)
                taken = await conn.fetchval(_CLAIM, key)
        except StoreUnavailableError as exc:
            taken = await self._on_locker(key, exc)
            if taken is None:
                return self._recent.first_time(key)
        self._recent.first_time(key)
        if not taken:
            self._lost_at = time.monotonic()
        return bool(taken)

    async def _on_locker(self, key: str, why: Exception) -> bool | None:
        if self._locker is None:
            return None
        logger.warning("Claiming event %s on the lock connection: %s", key, why)
        try:
            return bool(await self._locker.run(lambda conn: conn.fetchval(_CLAIM, key)))
        except (StoreUnavailableError, asyncpg.PostgresError) as exc:
            logger.warning("Claiming event %s failed (%s); deciding in this worker alone", key, exc)
            return None

    async def _prune(self, conn: Connection) -> None:
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < _PRUNE_SECONDS:
            return
        self._pruned_at = now
        deleted = await conn.execute(_PRUNE, _DELIVERY_DAYS)
        logger.debug("Pruned old delivery keys: %s", deleted)
