"""A reply that grows while the model streams: posted on the first text, then edited in place.

Every platform that shows an answer by posting and editing messages uses this one streamer:
Discord always, Slack where its native streaming is off or refused. Writes go through a
per-channel `ChannelThrottle`, and the model is never held up by the platform: `add()` only
records text, a background task brings the messages up to date. Text over the message limit
continues in follow-up messages. The platform calls sit behind the small `Poster` protocol,
so this logic is tested without any platform library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

from cachetools import LRUCache

from .text import split_message

logger = logging.getLogger(__name__)

H = TypeVar("H")


class ChannelThrottle:
    """Spaces writes (sends and edits) to each channel at least `interval` seconds apart.

    Discord limits writes per channel, so streaming replies in two channels must not slow each
    other down, while two replies in one channel share that channel's budget. A reply's *last*
    write may skip the spacing and use the burst Discord allows (5 writes per 5 seconds per
    channel), so a finished answer shows at once instead of up to `interval` later.
    """

    def __init__(
        self,
        interval: float,
        *,
        burst: int = 5,
        window: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        capacity: int = 10_000,
    ) -> None:
        self._interval = interval
        self._burst = burst
        self._window = window
        self._clock = clock
        self._sleep = sleep
        # Per channel: when the next paced write may go, and the times of the latest writes.
        self._channels: LRUCache[Hashable, tuple[float, deque[float]]] = LRUCache(capacity)

    @property
    def interval(self) -> float:
        return self._interval

    def __len__(self) -> int:
        """Channels tracked (the most recently written, up to the capacity)."""
        return len(self._channels)

    async def wait(self, channel_id: Hashable, *, final: bool = False) -> None:
        """Wait for, and take, the next write slot for `channel_id`.

        The slot is taken only once the wait is over, so a cancelled wait costs nothing.

        Args:
            channel_id: The channel written to.
            final: The reply's last write: only the burst budget applies, not the spacing.
        """
        while True:
            now = self._clock()
            paced, recent = self._channels.get(channel_id) or (now, deque(maxlen=self._burst))
            if final:
                full = len(recent) == self._burst
                at = max(now, recent[0] + self._window) if full else now
            else:
                at = max(now, paced)
            if at <= now:
                break
            await self._sleep(at - now)
        recent.append(now)
        self._channels[channel_id] = (max(paced, now + self._interval), recent)


class CannotPost(Exception):
    """Posting there will keep failing (missing permission, channel gone): stop trying."""


class Poster(Protocol[H]):
    """Writes to one channel, thread or DM; `H` is whatever identifies a sent message."""

    async def send(self, text: str, *, first: bool) -> H:
        """Send a new message; `first` marks the start of the reply."""
        ...

    async def edit(self, handle: H, text: str) -> H:
        """Replace a sent message's text."""
        ...

    async def delete(self, handle: H) -> None:
        """Remove a sent message."""
        ...


class StreamedReply(Generic[H]):
    """One reply in one channel, shown while it is written.

    Args:
        poster: Writes to the channel.
        throttle: Spaces writes per channel.
        channel_id: The throttle key.
        limit: Longest message.
        render: Turns the text so far into what is shown, told whether it is final (Slack
            converts Markdown to mrkdwn and marks a partial answer as still being written).
        indicator: Shows "working on it" for a few seconds (Discord's typing), renewed every
            `typing_interval` until the first text; None for platforms without one.
        typing_interval: How often the indicator is renewed.
    """

    def __init__(
        self,
        poster: Poster[H],
        throttle: ChannelThrottle,
        channel_id: Hashable,
        *,
        limit: int,
        render: Callable[[str, bool], str] | None = None,
        indicator: Callable[[], Awaitable[None]] | None = None,
        typing_interval: float = 8.0,
    ) -> None:
        self._poster = poster
        self._throttle = throttle
        self._channel_id = channel_id
        self._limit = limit
        self._render = render
        self._indicator = indicator
        self._typing_interval = typing_interval
        self._text = ""
        self._final = False
        self._finished = asyncio.Event()
        self._blocked = False
        self._dirty = asyncio.Event()
        self._sent: list[H] = []
        self._shown: list[str | None] = []
        self._typing: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[bool] | None = None

    @property
    def writes(self) -> int:
        """Messages currently shown for this reply."""
        return len(self._sent)

    @property
    def last(self) -> H | None:
        """The reply's last message as shown now; None before anything was posted."""
        return self._sent[-1] if self._sent else None

    def replace_last(self, handle: H) -> None:
        """The last message was changed outside the stream (e.g. buttons added)."""
        if self._sent:
            self._sent[-1] = handle

    def redraw(self) -> None:
        """Show the reply again with no new text, because what `render` adds changed.

        Ignored once the reply is final.
        """
        if self._final:
            return
        self._dirty.set()
        self._ensure_flusher()

    def start_typing(self) -> None:
        """Show the platform's indicator until the first text (or the end)."""
        if self._typing is None and self._indicator is not None:
            self._typing = asyncio.create_task(self._keep_typing(), name="reply-indicator")

    def adopt(self, handle: H) -> None:
        """Go on in a message already shown (a native stream that had to stop, say)."""
        if not self._sent:
            self._sent.append(handle)
            self._shown.append(None)

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
        # A finished reply may be finished again with other text (a prompt that could not
        # carry its buttons gives way to a plain line).
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="streamed-reply")
        return self._flusher

    def _stop_typing(self) -> None:
        if self._typing is not None:
            self._typing.cancel()

    async def _keep_typing(self) -> None:
        assert self._indicator is not None
        while True:
            try:
                await self._indicator()
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
            shown = self._text if self._render is None else self._render(self._text, final)
            parts = split_message(shown, self._limit)
            done = await self._sync(parts, final=final)
            if final:
                if not done and not self._blocked:
                    # The platform's client already retried rate limits and 5xx; one more
                    # pass covers a failure that happened mid-stream and stayed failed.
                    done = await self._sync(parts, final=True)
                return done

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
