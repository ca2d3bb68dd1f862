"""The platform-neutral messages: what adapters hand to the core and what the core hands back."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class IncomingMessage:
    """One message as the core sees it; adapters build it, the core never sees platform objects.

    Adapters only build messages that are for the bot: deciding that is their rules' job.

    Attributes:
        platform: Short platform name, e.g. ``"discord"``.
        session_id: The memory key, derived from the *thread* the message belongs to
            (``discord:<guild>:<thread-or-channel>``, ``slack:<team>:<channel>:<thread_ts>``,
            ``console:<name>``). Every message in one thread maps to the same ID.
        author_id: Platform-stable ID of the person who wrote it.
        author_name: Display name, shown to the model so it knows who said what.
        text: The message text as the person wrote it, with any mention of the bot removed.
        message_id: The platform's ID for this message or event, when it has one; a second
            message with the same ID (a redelivered event) is answered only once.
        mentioned: The person addressed the bot by name, so a bare command word
            (``@bot forget``) counts as the command.
        channel_id: The memory key of the channel the thread is in, for
            ``BOT_MEMORY_SCOPE=channel``; None when the thread is the channel itself (a
            channel's main conversation, a DM).
    """

    platform: str
    session_id: str
    author_id: str
    author_name: str
    text: str
    message_id: str | None = None
    mentioned: bool = False
    channel_id: str | None = None

    def memory_key(self, scope: str) -> str:
        """Whose memory this message joins under a memory scope (`thread`, `channel`, `user`)."""
        if scope == "channel":
            return self.channel_id or self.session_id
        if scope == "user":
            return f"{self.platform}:user:{self.author_id}"
        return self.session_id


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
    REPEAT = "repeat"
    """A redelivery of a message already taken: there is nothing to show."""


@dataclass(frozen=True)
class Reply:
    """The final outcome of handling one message."""

    text: str
    kind: ReplyKind

    @property
    def ephemeral(self) -> bool:
        """Whether platforms that can should show it to the invoker only."""
        return self.kind is ReplyKind.COMMAND

    @property
    def shown(self) -> bool:
        """Whether there is anything to show at all."""
        return self.kind is not ReplyKind.REPEAT


@dataclass(frozen=True)
class Surface:
    """What the platform a reply goes to can show, set once per adapter."""

    max_chars: int | None = None
    """Longest single message; command answers are fitted to it. None for no limit."""
    command_prefix: str = "/"
    """How people type commands there, used in help and error texts."""


class ReplySink(Protocol):
    """Where the core reports a turn while it runs, so the platform can show it live.

    Nothing is called for commands, notices or repeats: an indicator never flashes for them.
    """

    async def started(self) -> None:
        """The message starts a model turn: show that the bot is working on it."""
        ...

    async def delta(self, text: str) -> None:
        """The next piece of the answer, as the model writes it."""
        ...
