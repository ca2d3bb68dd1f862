"""Showing one answer in Discord while the model writes it: discord.py behind the streamer.

The shared `StreamedReply` does the posting and editing; this module gives it discord.py's
calls (`DiscordPoster`), adds what Discord shows besides the text (`DiscordReply`: a line naming
the tool being run, buttons on the last message), and is the core's `ReplySink` for one message
(`AnswerSink`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Hashable
from typing import Any

import discord

from bot.adapter import ReplyFile

from ..streaming import CannotPost, ChannelThrottle, Poster, StreamedReply

logger = logging.getLogger(__name__)

NOTICE_SECONDS = 5.0
"""How long a last notice may take to post while shutting down (a partial answer replaced,
a prompt given its buttons back)."""

Reference = discord.Message | discord.PartialMessage


def tool_status(name: str) -> str:
    """The line shown while the agent runs a tool."""
    return f"Using `{name}`…"


def discord_file(file: ReplyFile) -> discord.File:
    """A reply's file as an upload (a fresh one each time: discord.py closes it once sent)."""
    return discord.File(
        io.BytesIO(file.content.encode()), filename=file.name, description=file.title or None
    )


class DiscordPoster:
    """Writes a reply into one channel, thread or DM (a `streaming.Poster`)."""

    def __init__(self, channel: discord.abc.Messageable, reference: Reference | None) -> None:
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


class DiscordReply(StreamedReply[discord.Message]):
    """A streamed reply that can also show a status line and carry buttons.

    The status line ("Using `lookup_ticket`…") is drawn by the shared streamer's `render` hook,
    so it goes out through the same throttled post-then-edit loop as the text; the next delta
    or the final text drops it.
    """

    def __init__(
        self,
        poster: Poster[discord.Message],
        throttle: ChannelThrottle,
        channel_id: Hashable,
        **options: Any,
    ) -> None:
        super().__init__(poster, throttle, channel_id, render=self._with_status, **options)
        self._status: str | None = None

    async def add(self, delta: str) -> None:
        if delta.strip():
            self._status = None
        await super().add(delta)

    def show_status(self, line: str) -> None:
        """Show `line` under the text so far until the next delta or the final text."""
        self._status = line
        self.redraw()

    async def attach(self, view: discord.ui.View) -> discord.Message | None:
        """Put `view` (buttons) on the last message, once the final text is shown.

        Returns:
            The message now carrying the view; None when there was none or the edit failed.
        """
        last = self.last
        if last is None:
            return None
        await self._throttle.wait(self._channel_id, final=True)
        try:
            edited = await last.edit(view=view)
        except discord.HTTPException as exc:
            logger.warning("Adding buttons in channel %s failed: %s", self._channel_id, exc)
            return None
        self.replace_last(edited)
        return edited

    async def attach_file(self, file: ReplyFile) -> bool:
        """Add `file` to the last message, once the final text is shown.

        Returns:
            Whether it was added; a failure (no Attach Files permission, too large) is logged
            and leaves the text as it is.
        """
        last = self.last
        if last is None:
            return False
        await self._throttle.wait(self._channel_id, final=True)
        try:
            edited = await last.edit(attachments=[discord_file(file)])
        except discord.HTTPException as exc:
            logger.warning(
                "Attaching %s in channel %s failed: %s", file.name, self._channel_id, exc
            )
            return False
        self.replace_last(edited)
        return True

    def _with_status(self, text: str, final: bool) -> str:
        status = self._status
        if final or status is None:
            return text
        return f"{text.rstrip()}\n\n{status}" if text.strip() else status


class AnswerSink:
    """The core's view of one streamed answer: show typing, stream text and tool use."""

    def __init__(self, stream: DiscordReply) -> None:
        self._stream = stream

    async def started(self) -> None:
        """The core has a turn: show typing until the first text."""
        self._stream.start_typing()

    async def delta(self, text: str) -> None:
        await self._stream.add(text)

    async def tool(self, name: str) -> None:
        """Show which tool the agent is running, under any text so far."""
        self._stream.show_status(tool_status(name))
