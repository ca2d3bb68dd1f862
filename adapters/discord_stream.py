"""Showing one answer in Discord while the model writes it: discord.py behind `streaming`.

The shared `StreamedReply` does the posting and editing; this module gives it discord.py's
calls (`DiscordPoster`) and is the core's `ReplySink` for one message (`AnswerSink`).
"""

from __future__ import annotations

import warnings
from collections.abc import Awaitable, Callable

with warnings.catch_warnings():
    # discord.py imports the deprecated `audioop` for voice, which this bot never uses.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord

from .streaming import CannotPost, StreamedReply


class DiscordPoster:
    """Writes a reply into one channel, thread or DM (a `streaming.Poster`)."""

    def __init__(self, channel: discord.abc.Messageable, reference: discord.Message | None) -> None:
        self._channel = channel
        self._reference = reference

    def move_to(self, thread: discord.Thread) -> None:
        """Answer in `thread` instead (opened on the message, so no reply reference)."""
        self._channel, self._reference = thread, None

    async def send(self, text: str, *, first: bool) -> discord.Message:
        reference = (
            self._reference.to_reference(fail_if_not_exists=False)
            if first and self._reference is not None
            else None
        )
        try:
            return await self._channel.send(text, reference=reference)  # type: ignore[arg-type]
        except (discord.Forbidden, discord.NotFound) as exc:
            raise CannotPost(str(exc)) from exc

    async def edit(self, handle: discord.Message, text: str) -> discord.Message:
        try:
            return await handle.edit(content=text)
        except (discord.Forbidden, discord.NotFound) as exc:
            raise CannotPost(str(exc)) from exc

    async def delete(self, handle: discord.Message) -> None:
        try:
            await handle.delete()
        except discord.NotFound:
            pass  # already gone is what we wanted
        except discord.Forbidden as exc:
            raise CannotPost(str(exc)) from exc

    async def typing(self) -> None:
        """Show the typing indicator (Discord shows it for about ten seconds)."""
        await self._channel.typing()


class AnswerSink:
    """The core's view of one streamed answer: open the thread if asked, show typing, stream."""

    def __init__(
        self,
        stream: StreamedReply[discord.Message],
        open_thread: Callable[[], Awaitable[None]] | None,
    ) -> None:
        self._stream = stream
        self._open_thread = open_thread

    async def started(self) -> None:
        """The core has a turn: open the thread if one was asked for, then show typing."""
        if self._open_thread is not None:
            await self._open_thread()
        self._stream.start_typing()

    async def delta(self, text: str) -> None:
        await self._stream.add(text)
