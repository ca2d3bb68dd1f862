"""Tool approvals on Discord: the prompt with Approve / Reject buttons, the click, the outlet.

A paused turn is shown as its prompt text with one action row of two buttons whose custom IDs
carry the decision and the approval ID (`approval:approve:<id>`). The buttons are a
`discord.ui.DynamicItem`, registered once with `Client.add_dynamic_items()`: that is what
discord.py documents for persistent components whose state lives in the custom ID
(`examples/views/dynamic_counter.py`). A view registered with `add_view()` needs its custom IDs
known at start-up, and `on_interaction` would re-implement the library's dispatch; a dynamic
item matches any approval ID by its template, so a prompt posted before a restart still works
after it, with nothing to reload. The approval itself (and the paused run) lives in the core's
store; the prompt's address (channel and message ID, as JSON) lets the core's outlet find it
again when the approval expires or is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord

from bot.adapter import (
    SHUTTING_DOWN,
    ApprovalEnding,
    ApprovalRequest,
    Core,
    Decision,
    Reply,
    ReplyKind,
    Surface,
)

from ..inflight import InFlight
from .stream import AnswerSink, DiscordPoster, DiscordReply
from .text import MAX_MESSAGE_CHARS

logger = logging.getLogger(__name__)

CUSTOM_ID = re.compile(
    r"approval:(?P<decision>approve|reject):(?P<approval_id>[A-Za-z0-9._~-]{1,84})"
)
"""What the buttons carry; Discord allows 100 characters, the prefix takes 16 at most."""
OUTCOME_LINES = {
    ApprovalEnding.EXPIRED: "⌛ Expired — not run",
    ApprovalEnding.CANCELLED: "🚫 Cancelled — a new message came in",
}

NOTICE_SECONDS = 5.0
"""How long putting a prompt back may take while shutting down."""

NewStream = Callable[[DiscordPoster, int], DiscordReply]
"""Builds a streamed reply for a poster in a channel, with the adapter's throttle and typing."""
Permits = Callable[["discord.Interaction[Any]"], bool]
"""Whether the person behind an interaction passes the adapter's allow rules."""


def custom_id(decision: Decision, approval_id: str) -> str:
    return f"approval:{decision.value}:{approval_id}"


def decided_line(decision: Decision, name: str) -> str:
    """What a prompt says once someone clicked."""
    who = discord.utils.escape_markdown(name)
    return f"✅ Approved by {who}" if decision is Decision.APPROVE else f"❌ Rejected by {who}"


def settled_text(prompt: str, line: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """The prompt's text with how it ended under it, cut to fit one message.

    The request stays readable after the buttons are gone, so the thread keeps a record of
    what was run (or not) and who decided.
    """
    tail = f"\n\n{line}" if prompt.strip() else line
    room = limit - len(tail)
    body = prompt if len(prompt) <= room else prompt[: max(0, room - 1)].rstrip() + "…"
    return body + tail


def prompt_text(reply: Reply, request: ApprovalRequest) -> str:
    """What the prompt message says: the core's text, or the calls when it gave none."""
    return reply.text.strip() or f"I'd like to run:\n{request.describe()}\nApprove?"


@dataclass(frozen=True)
class PromptAddress:
    """Where a prompt is, as the opaque string handed to `Core.approval_posted()`."""

    channel_id: int
    message_id: int

    def dumps(self) -> str:
        return json.dumps({"channel_id": str(self.channel_id), "message_id": str(self.message_id)})

    @classmethod
    def loads(cls, raw: str) -> PromptAddress:
        """Parse an address; raises ValueError for one this adapter did not write."""
        try:
            data = json.loads(raw)
            return cls(int(data["channel_id"]), int(data["message_id"]))
        except (TypeError, KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a Discord prompt address: {raw!r}") from exc


class ApprovalButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=CUSTOM_ID):
    """Approve or Reject on a prompt; discord.py rebuilds it from the custom ID on each click."""

    def __init__(self, decision: Decision, approval_id: str) -> None:
        approve = decision is Decision.APPROVE
        super().__init__(
            discord.ui.Button(
                label="Approve" if approve else "Reject",
                style=discord.ButtonStyle.success if approve else discord.ButtonStyle.danger,
                custom_id=custom_id(decision, approval_id),
            )
        )
        self.decision = decision
        self.approval_id = approval_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> ApprovalButton:
        return cls(Decision(match["decision"]), match["approval_id"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        # discord.py builds this item itself from the custom ID, so nothing can be handed to
        # it: the adapter is reached through the client that received the interaction.
        await interaction.client.on_approval_click(interaction, self.decision, self.approval_id)


class _ClickSink:
    """The sink for a decided turn: the prompt shows the outcome (and loses its buttons) as
    soon as the resumed run shows anything, before the answer streams.

    Not at `started()`: the core calls that before it has won the approval's lock, so a
    second, losing click would overwrite the winner's outcome line.
    """

    def __init__(self, inner: AnswerSink, close_prompt: Callable[[], Awaitable[None]]) -> None:
        self._inner = inner
        self._close_prompt = close_prompt
        self.closed = False

    async def close(self) -> None:
        """Show the outcome on the prompt, once."""
        if not self.closed:
            self.closed = True
            await self._close_prompt()

    async def started(self) -> None:
        await self._inner.started()

    async def delta(self, text: str) -> None:
        await self.close()
        await self._inner.delta(text)

    async def tool(self, name: str) -> None:
        await self.close()
        await self._inner.tool(name)


def approval_view(approval_id: str) -> discord.ui.View:
    """One action row: Approve (green), Reject (red). No timeout: the core decides expiry."""
    view = discord.ui.View(timeout=None)
    view.add_item(ApprovalButton(Decision.APPROVE, approval_id))
    view.add_item(ApprovalButton(Decision.REJECT, approval_id))
    return view


class DiscordApprovals:
    """Shows prompts, answers clicks, and updates prompts nobody clicked (the core's outlet).

    Args:
        core: The core that decides.
        client: The connected client, for prompts found again by address.
        new_stream: Builds a streamed reply like a normal turn's.
        permits: The adapter's allow rules for the person who clicked.
        inflight: The adapter's work under way, so shutdown lets a resumed turn finish.
        surface: What Discord can show.
    """

    def __init__(
        self,
        core: Core,
        client: discord.Client,
        *,
        new_stream: NewStream,
        permits: Permits,
        inflight: InFlight,
        surface: Surface,
    ) -> None:
        self._core = core
        self._client = client
        self._new_stream = new_stream
        self._permits = permits
        self._inflight = inflight
        self._surface = surface

    async def deliver(self, stream: DiscordReply, reply: Reply, where: str) -> None:
        """Show a reply in its stream: a prompt with buttons for APPROVAL, else the text."""
        if not reply.shown:
            await stream.abort()
            return
        if reply.kind is ReplyKind.APPROVAL and reply.approval is not None:
            await self._post_prompt(stream, reply, reply.approval)
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

    async def _post_prompt(
        self, stream: DiscordReply, reply: Reply, request: ApprovalRequest
    ) -> None:
        shown = await stream.finish(prompt_text(reply, request))
        message = await stream.attach(approval_view(request.approval_id)) or stream.last
        if not shown or message is None:
            logger.error(
                "The approval prompt %s could not be shown (see the warning above); it will "
                "expire unanswered",
                request.approval_id,
            )
        if message is None:
            return
        address = PromptAddress(message.channel.id, message.id)
        await self._core.approval_posted(request.approval_id, address.dumps())

    # ----- clicks -----------------------------------------------------------------------------

    async def on_click(
        self, interaction: discord.Interaction[Any], decision: Decision, approval_id: str
    ) -> None:
        """Acknowledge a click, let the core decide, and show what came of it."""
        await self._inflight.run(self._click(interaction, decision, approval_id))

    async def _click(
        self, interaction: discord.Interaction[Any], decision: Decision, approval_id: str
    ) -> None:
        # Discord drops a click not acknowledged within 3 s, and a decision can run a whole
        # turn: acknowledge first ("the message will be updated"), decide after.
        try:
            await interaction.response.defer()
        except discord.HTTPException as exc:
            logger.warning("Acknowledging a click on approval %s failed: %s", approval_id, exc)
            return
        prompt = interaction.message
        if prompt is None:
            return
        user = interaction.user
        line = decided_line(decision, user.display_name)

        async def close_prompt() -> None:
            await self._edit_prompt(interaction, settled_text(prompt.content, line), None)

        stream = self._new_stream(DiscordPoster(prompt.channel, prompt), prompt.channel.id)
        sink = _ClickSink(AnswerSink(stream, None), close_prompt)
        buttons_back = functools.partial(
            self._edit_prompt, interaction, prompt.content, approval_view(approval_id)
        )
        try:
            reply = await self._core.decide(
                approval_id,
                decision,
                user_id=str(user.id),
                user_name=user.display_name,
                allowed=self._permits(interaction),
                surface=self._surface,
                sink=sink,
            )
        except asyncio.CancelledError:
            # Shutting down cut the resumed turn short: nothing of it was stored and the
            # approval is still pending, so the prompt gets its buttons back and a partial
            # answer is replaced.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(NOTICE_SECONDS):
                    if sink.closed:
                        await buttons_back()
                    await stream.finish(SHUTTING_DOWN)
            raise
        where = f"channel {prompt.channel.id}"
        if reply.kind is ReplyKind.NOTICE:
            # Only the clicker learns why nothing happened; the prompt stays as it was.
            await stream.abort()
            await self._tell_clicker(interaction, reply.text)
            return
        if reply.kind is ReplyKind.ERROR:
            # The approval is still pending: give the buttons back so it can be tried again.
            if sink.closed:
                await buttons_back()
            await self.deliver(stream, reply, where)
            return
        await sink.close()
        await self.deliver(stream, reply, where)

    async def _edit_prompt(
        self, interaction: discord.Interaction[Any], text: str, view: discord.ui.View | None
    ) -> None:
        # Through the interaction's webhook: for a component, "@original" is the message the
        # button is on, and editing it needs no channel permission or channel rate budget.
        try:
            await interaction.edit_original_response(content=text, view=view)
        except discord.HTTPException as exc:
            logger.warning(
                "Updating the approval prompt in channel %s failed: %s", interaction.channel_id, exc
            )

    @staticmethod
    async def _tell_clicker(interaction: discord.Interaction[Any], text: str) -> None:
        try:
            await interaction.followup.send(text, ephemeral=True)
        except discord.HTTPException as exc:
            logger.warning(
                "Answering a click in channel %s failed: %s", interaction.channel_id, exc
            )

    # ----- the outlet: endings without a click -------------------------------------------------

    async def settled(
        self, request: ApprovalRequest, address: str, outcome: ApprovalEnding, reply: Reply | None
    ) -> None:
        """Mark the prompt at `address` as expired or cancelled, and post `reply` if given."""
        try:
            where = PromptAddress.loads(address)
        except ValueError:
            logger.error("Approval %s has an address this adapter cannot read", request.approval_id)
            return
        # A partial channel needs no cache and no lookup: after a restart, or in a DM the
        # client never saw, the prompt is still reached by its IDs alone.
        channel = self._client.get_partial_messageable(where.channel_id)
        try:
            prompt = await channel.fetch_message(where.message_id)
            await prompt.edit(
                content=settled_text(prompt.content, OUTCOME_LINES[outcome]), view=None
            )
        except discord.HTTPException as exc:
            logger.warning(
                "Marking approval %s %s in channel %s failed: %s",
                request.approval_id,
                outcome.value,
                where.channel_id,
                exc,
            )
        if reply is None:
            return
        poster = DiscordPoster(channel, channel.get_partial_message(where.message_id))
        await self.deliver(
            self._new_stream(poster, where.channel_id), reply, f"channel {where.channel_id}"
        )
