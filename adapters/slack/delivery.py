"""Showing the core's replies in Slack: a turn's answer or prompt in its thread, the status
under it, and what only one person may see.

Every reply the adapter shows goes through `SlackDelivery`, whatever brought it (a message, a
click, a command, an expiry), so streaming is given up in one place when Slack refuses it, and
a turn cut off by a shutdown says so in one way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapter import SHUTTING_DOWN, Core, Reply, ReplyKind, Surface

from ..streaming import ChannelThrottle
from .prompts import end_prompt, post_prompt
from .rules import is_dm
from .stream import AnswerWriter, Destination, StatusSink, error_code
from .text import to_mrkdwn
from .uploads import SENT_IN_DM, send_in_dm

logger = logging.getLogger(__name__)

STREAMING_UNAVAILABLE = frozenset(
    {"unknown_method", "not_allowed_token_type", "missing_scope", "feature_not_enabled"}
)
"""Errors that mean streaming will never work here, so the adapter stops trying."""
NOTICE_SECONDS = 5.0
"""How long the notice of a turn cut off by a shutdown may take to show."""


class SlackDelivery:
    """Shows replies: streamed into threads, as prompts with buttons, or to one person.

    Args:
        core: The core, told where each approval prompt is.
        client: The bot's Web API client.
        streaming: Whether to try Slack's native chat streaming first.
        max_chars: Longest message posted; longer answers are split.
        update_interval: Least time between two edits of a streaming answer.
    """

    def __init__(
        self,
        core: Core,
        client: AsyncWebClient,
        *,
        streaming: bool,
        max_chars: int,
        update_interval: float,
    ) -> None:
        self._core = core
        self._client = client
        self._streaming = streaming
        self._max_chars = max_chars
        self._throttle = ChannelThrottle(update_interval)
        self.surface = Surface(max_chars=max_chars, command_prefix="!")
        """What Slack shows, for the core: messages up to `max_chars`, commands as ``!forget``."""

    def writer(self, dest: Destination, *, streaming: bool | None = None) -> AnswerWriter:
        """A writer for one answer at `dest`, streaming natively unless told or learnt not to."""
        return AnswerWriter(
            self._client,
            dest,
            throttle=self._throttle,
            streaming=self._streaming if streaming is None else streaming,
            max_chars=self._max_chars,
            interval=self._throttle.interval,
        )

    @contextlib.asynccontextmanager
    async def turn(self, dest: Destination) -> AsyncIterator[tuple[AnswerWriter, StatusSink]]:
        """A writer and the core's sink for a turn answered at `dest`; afterwards the thread's
        status is cleared if it may still show, and a refused stream is not tried again."""
        writer = self.writer(dest)
        sink = StatusSink(writer, functools.partial(self.set_status, dest))
        try:
            yield writer, sink
        finally:
            if sink.needs_clearing:
                await self.set_status(dest, "")
        self._learn_streaming(writer)

    async def cut_short(self, writer: AnswerWriter) -> None:
        """Say the bot is restarting where a turn cut off by a shutdown was answering: in
        place of what had streamed (nothing of the turn was stored), or of "is thinking…".
        Never raises; gives up after `NOTICE_SECONDS`."""
        with contextlib.suppress(Exception, asyncio.CancelledError):
            async with asyncio.timeout(NOTICE_SECONDS):
                await writer.finish(Reply(SHUTTING_DOWN, ReplyKind.NOTICE))

    async def show(self, reply: Reply, writer: AnswerWriter, dest: Destination) -> None:
        """Show a turn's reply in its thread: the answer, or a prompt with buttons."""
        if reply.kind is ReplyKind.APPROVAL:
            await post_prompt(self._core, reply, writer, dest)
        elif reply.shown:
            await writer.finish(reply)

    async def show_complete(self, reply: Reply, dest: Destination) -> None:
        """Post a reply that is complete already (the answer after a prompt expired)."""
        # Nothing to stream: one post.
        await self.show(reply, self.writer(dest, streaming=False), dest)

    async def end_prompt(self, channel: str, ts: str, text: str, ending: str) -> bool:
        """Take the buttons off the prompt `ts` and add the line saying how it ended."""
        return await end_prompt(self._client, channel, ts, text, ending)

    async def set_status(self, dest: Destination, status: str) -> bool:
        """Show (or clear) 'is thinking…' under the thread; a failure only costs the hint."""
        if dest.thread_ts is None:
            return False
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=dest.channel, thread_ts=dest.thread_ts, status=status
            )
        except SlackApiError as exc:
            logger.debug("Could not set the thread status: %s", error_code(exc))
            return False
        return True

    async def ephemeral(self, dest: Destination, text: str) -> bool:
        """Post `text` (mrkdwn) for `dest.user_id` alone; False (logged) when Slack refuses."""
        try:
            await self._client.chat_postEphemeral(
                channel=dest.channel, user=dest.user_id, thread_ts=dest.thread_ts, text=text
            )
        except SlackApiError as exc:
            logger.error(
                "Could not post a reply only %s sees in %s: %s",
                dest.user_id,
                dest.channel,
                error_code(exc),
            )
            return False
        return True

    async def command_text(self, reply: Reply, channel: str, user: str) -> str:
        """A command's answer as mrkdwn, for the person who asked only.

        A file with it (the whole `/history`) goes to their direct messages first, since an
        ephemeral message carries none; the answer says so once it is there.
        """
        text = reply.text
        if reply.file is not None:
            where = "" if is_dm(channel) else f" in <#{channel}>"
            comment = f"The full history you asked for{where}."
            if await send_in_dm(self._client, user, reply.file, comment=comment):
                text = f"{text}\n\n{SENT_IN_DM.format(name=reply.file.name)}"
        return to_mrkdwn(text)

    def _learn_streaming(self, writer: AnswerWriter) -> None:
        if self._streaming and writer.stream_refused in STREAMING_UNAVAILABLE:
            self._streaming = False
            logger.warning(
                "Slack refused chat streaming (%s); posting and editing answers from now on",
                writer.stream_refused,
            )
