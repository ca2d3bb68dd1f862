"""The sink a turn streams through, guarded: a platform hiccup while showing the answer live
must never sink the turn itself."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..messages import ReplySink

logger = logging.getLogger(__name__)


def guarded(
    sink: ReplySink | None, first_text: Callable[[], None] | None = None
) -> ReplySink | None:
    """Wrap a sink so a platform hiccup while streaming cannot sink the turn itself.

    After the first failure the sink is skipped; the adapter still gets the whole reply.
    `first_text` is called once, when the first words have been shown.
    """
    return None if sink is None else _GuardedSink(sink, first_text)


class _GuardedSink:
    # Checked before each call, so a failed sink costs nothing more per delta (the hot path).
    def __init__(self, sink: ReplySink, first_text: Callable[[], None] | None) -> None:
        self._sink = sink
        self._failed = False
        self._first_text = first_text

    async def started(self) -> None:
        if not self._failed:
            try:
                await self._sink.started()
            except Exception as exc:
                self._give_up(exc)

    async def delta(self, text: str) -> None:
        if not self._failed:
            try:
                await self._sink.delta(text)
            except Exception as exc:
                self._give_up(exc)
        if self._first_text is not None:
            first_text, self._first_text = self._first_text, None
            first_text()

    async def tool(self, name: str) -> None:
        if not self._failed:
            try:
                await self._sink.tool(name)
            except Exception as exc:
                self._give_up(exc)

    def _give_up(self, exc: Exception) -> None:
        self._failed = True
        logger.warning("Showing a reply live failed; it will be delivered whole", exc_info=exc)
