"""Profiles chosen in the chat (`/profile NAME`), as every worker sees them.

Choices live in the store, so they last across restarts and are shared by every worker. They
are few (one per channel an admin switched) and read on every message, so each worker keeps
all of them and reads them again at most every `refresh` seconds: one query per interval
instead of one per message. A choice made on this worker counts at once; one made on another
worker counts here within `refresh` seconds, and `/profile` reads the place afresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..storage import Store

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 10.0


class ProfileChoices:
    """Every place's chosen profile, kept in memory and read again when stale."""

    def __init__(
        self,
        store: Store,
        *,
        refresh: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._refresh = refresh
        self._clock = clock
        self._chosen: dict[str, str] | None = None
        self._read_at = 0.0
        self._reading: asyncio.Task[None] | None = None

    async def get(self, place: str) -> str | None:
        """The profile chosen for `place`, as last read; None when none was chosen."""
        if self._chosen is None or self._clock() - self._read_at >= self._refresh:
            await self._read_all()
        return (self._chosen or {}).get(place)

    async def fresh(self, place: str) -> str | None:
        """The profile chosen for `place`, read from the store now (and kept)."""
        chosen = await self._store.profile_choice(place)
        self._keep(place, chosen)
        return chosen

    async def choose(self, place: str, profile: str | None, *, by: str) -> None:
        """Store a choice (None drops it); it counts on this worker at once."""
        await self._store.choose_profile(place, profile, by=by)
        self._keep(place, profile)

    def _keep(self, place: str, profile: str | None) -> None:
        if self._chosen is None:
            return  # the first full read will include it
        if profile is None:
            self._chosen.pop(place, None)
        else:
            self._chosen[place] = profile

    async def _read_all(self) -> None:
        # One read for every message that finds the copy stale at the same moment.
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._load())
        reading = self._reading
        try:
            await asyncio.shield(reading)
        finally:
            if reading.done() and self._reading is reading:
                self._reading = None

    async def _load(self) -> None:
        try:
            chosen = await self._store.profile_choices()
        except Exception:
            if self._chosen is None:
                raise
            # The copy is a little old; the message goes on with it rather than failing.
            logger.warning("Reading the chosen profiles failed; using the last read", exc_info=True)
            self._read_at = self._clock()
            return
        self._chosen = chosen
        self._read_at = self._clock()
