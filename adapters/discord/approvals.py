"""Tool approvals on Discord: a click on a prompt, and prompts that end without one.

A click (`prompts.ApprovalButton`) is acknowledged at once, then goes to the core, which
decides and resumes the turn; the resumed answer streams under the prompt. When nobody clicks
(the request expired, or a new message in the thread cancelled it) the core calls
`DiscordApprovals.settled`, the outlet, with the prompt's address.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
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
)

from ..inflight import InFlight
from .delivery import DiscordDelivery
from .facts import permits
from .prompts import OUTCOME_LINES, PromptAddress, approval_view, decided_line, settled_text
from .rules import AccessPolicy
from .stream import NOTICE_SECONDS, AnswerSink, DiscordPoster
from .text import SURFACE

logger = logging.getLogger(__name__)


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


class DiscordApprovals:
    """Answers clicks on prompts, and updates prompts nobody clicked (the core's outlet).

    Args:
        core: The core that decides.
        client: The connected client, for prompts found again by address.
        delivery: Streams and shows the resumed turn's reply, like a normal turn's.
        policy: The allow-lists the person who clicked must pass.
        inflight: The adapter's work under way, so shutdown lets a prompt's update and the
            answer after it finish.
    """

    def __init__(
        self,
        core: Core,
        client: discord.Client,
        *,
        delivery: DiscordDelivery,
        policy: AccessPolicy,
        inflight: InFlight,
    ) -> None:
        self._core = core
        self._client = client
        self._delivery = delivery
        self._policy = policy
        self._inflight = inflight

    # ----- clicks -----------------------------------------------------------------------------

    async def on_click(
        self, interaction: discord.Interaction[Any], decision: Decision, approval_id: str
    ) -> None:
        """Acknowledge a click, let the core decide, and show what came of it."""
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

        stream = self._delivery.stream(DiscordPoster(prompt.channel, prompt), prompt.channel.id)
        sink = _ClickSink(AnswerSink(stream), close_prompt)
        buttons_back = functools.partial(
            self._edit_prompt, interaction, prompt.content, approval_view(approval_id)
        )
        try:
            reply = await self._core.decide(
                approval_id,
                decision,
                user_id=str(user.id),
                user_name=user.display_name,
                allowed=permits(self._policy, interaction),
                surface=SURFACE,
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
            await self._delivery.deliver(stream, reply, where)
            return
        await sink.close()
        await self._delivery.deliver(stream, reply, where)

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
        # The core settles prompts in a task of its own, which no listener of the adapter's
        # covers: tracked from the prompt's update on, a shutdown lets both it and the answer
        # after it finish before disconnecting.
        await self._inflight.run(self._settle(request, address, outcome, reply))

    async def _settle(
        self, request: ApprovalRequest, address: str, outcome: ApprovalEnding, reply: Reply | None
    ) -> None:
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
        await self._delivery.deliver(
            self._delivery.stream(poster, where.channel_id), reply, f"channel {where.channel_id}"
        )
