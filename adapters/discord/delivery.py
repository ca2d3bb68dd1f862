"""Showing the core's replies on Discord: streamed, then finished as text, a file, or a prompt.

Every reply the adapter shows goes through `DiscordDelivery`, whatever brought it (a message,
a click, an expiry), so all of them share one throttle per channel and the same typing.
"""

from __future__ import annotations

import logging

from bot.adapter import Core, Reply, ReplyKind

from ..streaming import ChannelThrottle
from .prompts import post_prompt
from .stream import DiscordPoster, DiscordReply
from .text import MAX_MESSAGE_CHARS

logger = logging.getLogger(__name__)


class DiscordDelivery:
    """Streams replies into channels and shows how each ends.

    Args:
        core: The core, told where each approval prompt is.
        edit_interval: Least seconds between writes to one channel while streaming.
        typing_interval: How often the typing indicator is renewed before the first text.
    """

    def __init__(self, core: Core, *, edit_interval: float, typing_interval: float) -> None:
        self._core = core
        self._throttle = ChannelThrottle(edit_interval)
        self._typing_interval = typing_interval

    def stream(self, poster: DiscordPoster, channel_id: int) -> DiscordReply:
        """A reply streamed through `poster`, paced with every other write to `channel_id`."""
        return DiscordReply(
            poster,
            self._throttle,
            channel_id,
            limit=MAX_MESSAGE_CHARS,
            indicator=poster.typing,
            typing_interval=self._typing_interval,
        )

    async def deliver(self, stream: DiscordReply, reply: Reply, where: str) -> None:
        """Show a reply in its stream: a prompt with buttons for APPROVAL, else the text."""
        if not reply.shown:
            await stream.abort()
            return
        if reply.kind is ReplyKind.APPROVAL and reply.approval is not None:
            await post_prompt(self._core, stream, reply, reply.approval)
            return
        if not await stream.finish(reply.text):
            logger.error(
                "The %s reply in %s could not be delivered (see the warning above)",
                reply.kind.value,
                where,
            )
        elif reply.file is not None:
            # Onto the message just posted: a typed command's answer and its file stay one
            # message, as they are for a slash command.
            await stream.attach_file(reply.file)
