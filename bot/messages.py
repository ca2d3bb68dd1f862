"""The platform-neutral seam: what adapters hand to the core and what the core hands back."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class IncomingMessage:
    """One message as the core sees it; adapters build it, the core never sees platform objects.

    Attributes:
        platform: Short platform name, e.g. ``"discord"``.
        session_id: The memory key, derived from the *thread* the message belongs to
            (``discord:<guild>:<thread-or-channel>``, ``slack:<team>:<channel>:<thread_ts>``,
            ``console:<name>``). Every message in one thread maps to the same ID.
        author_id: Platform-stable ID of the person who wrote it.
        author_name: Display name, shown to the model so it knows who said what.
        text: The message text with any mention of the bot removed.
        addressed_to_bot: Whether the bot should answer (mention, DM, bot thread...).
        message_id: The platform's ID for this message or event, when it has one; a second
            message with the same ID (a redelivered event) is ignored.
    """

    platform: str
    session_id: str
    author_id: str
    author_name: str
    text: str
    addressed_to_bot: bool = True
    message_id: str | None = None


class ReplyKind(enum.Enum):
    """What a reply is, so adapters can choose how to show it."""

    ANSWER = "answer"
    """The model's answer, already stored in the thread's memory."""
    COMMAND = "command"
    """A command's result; best shown only to the person who asked."""
    NOTICE = "notice"
    """A short note from the bot itself (empty message, bot shutting down...)."""
    ERROR = "error"
    """The turn failed; the thread's memory is exactly as it was before it."""


@dataclass(frozen=True)
class Reply:
    """The final outcome of handling one message."""

    text: str
    kind: ReplyKind

    @property
    def ephemeral(self) -> bool:
        """Whether platforms that can should show it to the invoker only."""
        return self.kind is ReplyKind.COMMAND


TextSink = Callable[[str], Awaitable[None]]
"""Receives the answer's text deltas as the model produces them."""
