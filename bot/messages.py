"""The platform-neutral messages: what adapters hand to the core and what the core hands back."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

Fetch = Callable[[int], Awaitable[bytes]]
"""Downloads an attachment: given a byte limit, returns the bytes or raises when it cannot
(an HTTP error, or more than `limit` bytes). Adapters supply it; the core decides whether to call
it at all, so nothing is downloaded that would not be read."""


@dataclass(frozen=True)
class Attachment:
    """A file someone attached to a message, described by the adapter and read by the core.

    Attributes:
        name: The file name as the platform shows it.
        content_type: Its MIME type as the platform reports it ("" when unknown).
        size: Its size in bytes as the platform reports it, or None when unknown.
        fetch: How to download it (with the bot's own credentials: platform URLs expire).
    """

    name: str
    content_type: str
    size: int | None
    fetch: Fetch = field(compare=False, repr=False)


@dataclass(frozen=True)
class Place:
    """Where a message was written, as profile rules match it (`BOT_PROFILES`).

    Attributes:
        workspace: The Discord guild's ID or the Slack workspace's (team) ID; None where there
            is none (a Discord DM, the console).
        channel: The channel's ID; a thread gives its parent channel's, so a thread follows
            its channel. The console gives its ``--thread`` name.
        dm: A direct message with the bot (a DM is a place of its own).
    """

    workspace: str | None = None
    channel: str | None = None
    dm: bool = False

    def key(self, platform: str) -> str | None:
        """What a profile chosen in the chat is stored under: the channel (a DM's own channel
        ID); None when the adapter said nothing of the channel."""
        if self.channel is None:
            return None
        return f"{platform}:{self.workspace or '-'}:{self.channel}"


@dataclass(frozen=True)
class IncomingMessage:
    """One message as the core sees it; adapters build it, the core never sees platform objects.

    Adapters only build messages that are for the bot: deciding that is their rules' job.

    Attributes:
        platform: Short platform name, e.g. ``"discord"``.
        thread_key: The key of the *thread* the message belongs to
            (``discord:<guild>:<thread-or-channel>``, ``slack:<team>:<channel>:<thread_ts>``,
            ``console:<name>``); every message in one thread has the same one. Under
            ``BOT_MEMORY_SCOPE=thread`` (the default) it is also the key of the memory the
            message joins; `session_id()` gives that key under any scope.
        author_id: Platform-stable ID of the person who wrote it.
        author_name: Display name, shown to the model so it knows who said what.
        text: The message text as the person wrote it, with any mention of the bot removed.
        message_id: The platform's ID for this message or event, when it has one; a second
            message with the same ID (a redelivered event) is answered only once.
        mentioned: The person addressed the bot by name, so a bare command word
            (``@bot forget``) counts as the command.
        channel_key: The key of the channel the thread is in, for
            ``BOT_MEMORY_SCOPE=channel``; None when the thread is the channel itself (a
            channel's main conversation, a DM).
        attachments: Files attached to the message, in the order the platform lists them.
        place: Where it was written, for choosing its profile.
        author_roles: The author's roles there (Discord: each role's ID and name), matched
            against `[admins]` in the profiles file.
        author_admin: The author administers the place on the platform (Discord: Manage
            Server; Slack: a workspace admin or owner; anyone in the console), so they may
            switch its profile.
    """

    platform: str
    thread_key: str
    author_id: str
    author_name: str
    text: str
    message_id: str | None = None
    mentioned: bool = False
    channel_key: str | None = None
    attachments: tuple[Attachment, ...] = ()
    place: Place = field(default_factory=lambda: Place())
    author_roles: frozenset[str] = frozenset()
    author_admin: bool = False

    def session_id(self, scope: str) -> str:
        """The memory this message joins under a memory scope (`thread`, `channel`, `user`):
        its session ID, the key of the SDK `Session` and of the store. Only under `thread` is
        it the thread's own key."""
        if scope == "channel":
            return self.channel_key or self.thread_key
        if scope == "user":
            return f"{self.platform}:user:{self.author_id}"
        return self.thread_key


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
    APPROVAL = "approval"
    """The turn paused: a tool needs someone's approval. Show `Reply.approval` with Approve and
    Reject buttons and pass the click to `Core.decide()`. Nothing of the turn is stored yet."""


class Decision(enum.Enum):
    """What someone decided about a paused tool call."""

    APPROVE = "approve"
    REJECT = "reject"


class ApprovalEnding(enum.Enum):
    """How a pending approval ended without a click, for `ApprovalOutlet.settled()`."""

    EXPIRED = "expired"
    """Nobody decided within `BOT_APPROVAL_TIMEOUT`: the call was rejected, the model told."""
    CANCELLED = "cancelled"
    """A new message came into the thread first: the call was not run."""
    WITHDRAWN = "withdrawn"
    """`/undo` or `/forget` took the waiting turn back: the call was not run."""
    INTERRUPTED = "interrupted"
    """Approved, but the bot stopped while the call ran: it may or may not have completed."""


@dataclass(frozen=True)
class ToolRequest:
    """One tool call waiting for approval, shortened for showing."""

    name: str
    arguments: str
    """The call's arguments as compact JSON, cut to a few hundred characters."""


@dataclass(frozen=True)
class ApprovalRequest:
    """A paused turn waiting for Approve or Reject.

    Attributes:
        approval_id: What a button carries back to `Core.decide()` (URL-safe, at most 32
            characters, so it fits Discord's and Slack's custom IDs with a prefix).
        calls: The tool calls the decision covers (usually one).
        requester_id: Who sent the message the turn answers.
        requester_name: Their display name.
        expires_at: When the calls are rejected unless someone decides (UTC).
        approvers: Who may decide: ``"asker"`` (only the requester) or ``"allowed"`` (anyone
            the platform lets talk to the bot).
    """

    approval_id: str
    calls: tuple[ToolRequest, ...]
    requester_id: str
    requester_name: str
    expires_at: datetime
    approvers: str = "asker"

    def describe(self) -> str:
        """One line per call, for prompts: ``lookup_ticket {"id": "T-1"}``."""
        return "\n".join(f"{call.name} {call.arguments}".rstrip() for call in self.calls)


@dataclass(frozen=True)
class ReplyFile:
    """A text file to send with a reply (a whole `/history` as Markdown)."""

    name: str
    """The file name to show, e.g. ``history.md``."""
    content: str
    """The file's text; adapters send it as UTF-8."""
    title: str = ""
    """A short caption, for platforms that show one."""


@dataclass(frozen=True)
class Reply:
    """The final outcome of handling one message."""

    text: str
    kind: ReplyKind
    approval: ApprovalRequest | None = None
    """Set exactly when `kind` is APPROVAL."""
    file: ReplyFile | None = None
    """A file to send with the text (command answers only), for platforms that can."""

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

    async def tool(self, name: str) -> None:
        """The agent started running the tool `name`: show it ("Using name…") until the next
        delta or the end of the turn."""
        ...


class ApprovalOutlet(Protocol):
    """How the core updates an approval prompt that nobody clicked.

    Adapters attach one per platform with `Core.attach_outlet()`. Clicks are answered by the
    adapter itself from what `Core.decide()` returns; this is only for the other two endings.
    """

    async def settled(
        self, request: ApprovalRequest, address: str, outcome: ApprovalEnding, reply: Reply | None
    ) -> None:
        """Mark the prompt at `address` (what the adapter gave `Core.approval_posted()`) as
        ended by `outcome`, and post `reply` into its thread when there is one (the model's
        answer after an expiry)."""
        ...
