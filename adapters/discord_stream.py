"""A reply that grows while the model streams: sent on the first text, then edited in place.

Writes go through a per-channel `ChannelThrottle`, and the model is never held up by Discord:
`add()` only records text, a background task brings the messages up to date. Text over the
message limit continues in follow-up messages. The platform calls sit behind the small
`Poster` protocol, so this logic is tested without discord.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Generic, Protocol, TypeVar

from .discord_text import MAX_MESSAGE_CHARS, ChannelThrottle, split_message

logger = logging.getLogger(__name__)

H = TypeVar("H")


class CannotPost(Exception):
    """Posting there will keep failing (missing permission, channel gone): stop trying."""


class Poster(Protocol[H]):
    """Writes to one channel; `H` is whatever identifies a sent message."""

    async def send(self, text: str, *, first: bool) -> H:
        """Send a new message; `first` marks the start of the reply."""
        ...

    async def edit(self, handle: H, text: str) -> H:
        """Replace a sent message's text."""
        ...

    async def delete(self, handle: H) -> None:
        """Remove a sent message."""
        ...

    async def typing(self) -> None:
        """Show the typing indicator for a few seconds."""
        ...


class StreamedReply(Generic[H]):
    """One reply in one channel, shown while it is written.

    Args:
        poster: Writes to the channel.
        throttle: Spaces writes per channel.
        channel_id: The throttle key.
        limit: Longest message.
        typing_interval: How often to renew the typing indicator until the first text.
    """

    def __init__(
        self,
        poster: Poster[H],
        throttle: ChannelThrottle,
        channel_id: int,
        *,
        limit: int = MAX_MESSAGE_CHARS,
        typing_interval: float = 8.0,
    ) -> None:
        self._poster = poster
        self._throttle = throttle
        self._channel_id = channel_id
        self._limit = limit
        self._typing_interval = typing_interval
        self._text = ""
        self._final = False
        self._finished = asyncio.Event()
        self._blocked = False
        self._dirty = asyncio.Event()
        self._sent: list[H] = []
        self._shown: list[str] = []
        self._typing: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[bool] | None = None

    @property
    def writes(self) -> int:
        """Messages currently shown for this reply."""
        return len(self._sent)

    def start_typing(self) -> None:
        """Show the typing indicator until the first text (or the end)."""
        if self._typing is None:
            self._typing = asyncio.create_task(self._keep_typing(), name="discord-typing")

    async def add(self, delta: str) -> None:
        """Append streamed text; returns at once, the messages catch up in the background."""
        if not delta or self._final:
            return
        self._text += delta
        if self._text.strip():
            self._stop_typing()
            self._dirty.set()
            self._ensure_flusher()

    async def finish(self, text: str) -> bool:
        """Show exactly `text` as the reply, replacing whatever was streamed.

        Returns:
            True when the whole text is shown; False when posting failed (already logged).
        """
        self._stop_typing()
        self._text = text
        self._final = True
        self._finished.set()
        self._dirty.set()
        flusher = self._ensure_flusher()
        try:
            return await asyncio.shield(flusher)
        except asyncio.CancelledError:
            flusher.cancel()
            raise

    async def abort(self) -> None:
        """Stop showing anything more (nothing to answer after all)."""
        self._stop_typing()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    def _ensure_flusher(self) -> asyncio.Task[bool]:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="discord-stream")
        return self._flusher

    def _stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()

    async def _keep_typing(self) -> None:
        while True:
            try:
                await self._poster.typing()
            except Exception as exc:
                # Typing is decoration: without permission for it the answer may still go out.
                logger.debug("Typing indicator failed in channel %s: %s", self._channel_id, exc)
                return
            await asyncio.sleep(self._typing_interval)

    async def _flush(self) -> bool:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            final = self._final
            parts = split_message(self._text, self._limit)
            shown = await self._sync(parts, final=final)
            if final:
                if not shown and not self._blocked:
                    # Discord already retried rate limits and 5xx; one more pass covers a
                    # failure that happened mid-stream and stayed failed.
                    shown = await self._sync(parts, final=True)
                return shown

    async def _slot(self, final: bool) -> bool:
        """Wait for the channel's next write slot; False if the answer finished meanwhile.

        A partial update still waiting for its slot when the answer completes is dropped: the
        final text goes out next, on the burst budget, instead of a second later.
        """
        if final:
            await self._throttle.wait(self._channel_id, final=True)
            return True
        if self._finished.is_set():
            return False
        slot = asyncio.create_task(self._throttle.wait(self._channel_id))
        finished = asyncio.create_task(self._finished.wait())
        try:
            await asyncio.wait({slot, finished}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (slot, finished):
                task.cancel()
        return slot.done() and not slot.cancelled()

    async def _sync(self, parts: list[str], *, final: bool) -> bool:
        if self._blocked:
            return False
        try:
            for index, part in enumerate(parts):
                if index < len(self._sent):
                    if self._shown[index] == part:
                        continue
                    if not await self._slot(final):
                        return True
                    self._sent[index] = await self._poster.edit(self._sent[index], part)
                    self._shown[index] = part
                else:
                    if not await self._slot(final):
                        return True
                    self._sent.append(await self._poster.send(part, first=index == 0))
                    self._shown.append(part)
            if final:
                while len(self._sent) > len(parts):
                    if not await self._slot(final):
                        return True
                    await self._poster.delete(self._sent[-1])
                    self._sent.pop()
                    self._shown.pop()
        except CannotPost as exc:
            self._blocked = True
            logger.warning("Cannot post the reply in channel %s: %s", self._channel_id, exc)
            return False
        except Exception as exc:
            logger.warning(
                "Updating the reply in channel %s failed%s: %s: %s",
                self._channel_id,
                "" if final else " (will retry)",
                type(exc).__name__,
                exc,
            )
            return False
        return True
