"""Work an adapter has under way, so shutdown can let replies finish before disconnecting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

logger = logging.getLogger(__name__)

CLEANUP_SECONDS = 0.5


class InFlight:
    """The listener tasks currently delivering something; `finish()` waits for them."""

    def __init__(self, platform: str) -> None:
        self._platform = platform
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self, work: Awaitable[None]) -> None:
        """Await `work`, counting the calling task as in flight meanwhile."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await work
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def finish(self, grace: float) -> None:
        """Wait up to `grace` seconds for work under way, then cancel what is left."""
        pending = {t for t in self._tasks if not t.done()} - {asyncio.current_task()}
        if not pending:
            return
        logger.info("Finishing %d %s repl(ies) before disconnecting", len(pending), self._platform)
        _, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            logger.warning("Cut off %d %s repl(ies) still running", len(late), self._platform)
            # Let their cleanup (a last notice, buttons put back) run while the platform
            # connection is still open; briefly: it comes out of the time kept for
            # disconnecting (`bot.app.DISCONNECT_SECONDS`).
            await asyncio.wait(late, timeout=CLEANUP_SECONDS)
