"""Tool approvals on Slack: a click on a prompt, and prompts that end without one.

A click (`prompts.read_click`) goes to the core, which decides and resumes the turn; the
resumed answer streams into the prompt's thread. When nobody clicks (the request expired, or a
new message in the thread cancelled it) the core calls `SlackApprovals.settled`, the outlet.

However it ends, the prompt keeps its text, loses its buttons and gains one line saying how.
A click marks it only once the core has taken the click and finished the turn: only one click
can win, so the prompt's last state never depends on which of two updates Slack saw last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.adapter import ApprovalEnding, ApprovalRequest, Core, Reply, ReplyKind

from ..inflight import InFlight
from .delivery import SlackDelivery
from .lookups import SlackLookups
from .prompts import ENDINGS, Click, PromptAddress, decided_line, read_click
from .rules import AccessPolicy
from .stream import Destination
from .text import to_mrkdwn

logger = logging.getLogger(__name__)


class SlackApprovals:
    """Answers clicks on prompts, and updates prompts nobody clicked (the core's outlet).

    Args:
        core: The core that decides.
        delivery: Shows the resumed turn's answer, or the next prompt, and ends prompts.
        lookups: The clicker's display name.
        policy: The allow-lists the clicker must pass.
        inflight: The adapter's work under way, so shutdown lets a posting finish.
    """

    def __init__(
        self,
        core: Core,
        delivery: SlackDelivery,
        lookups: SlackLookups,
        *,
        policy: AccessPolicy,
        inflight: InFlight,
    ) -> None:
        self._core = core
        self._delivery = delivery
        self._lookups = lookups
        self._policy = policy
        self._inflight = inflight

    async def on_click(
        self, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """Let the core decide on a click (already acknowledged), and show what came of it."""
        click = read_click(body, action)
        if click is None:
            logger.warning("Ignored a click on an approval button without its details")
            return
        name = await self._lookups.author_name({}, click.user)
        dest = Destination(click.channel, click.thread_ts, click.team, click.user)
        async with self._delivery.turn(dest) as (writer, sink):
            try:
                reply = await self._core.decide(
                    click.approval_id,
                    click.decision,
                    user_id=click.user,
                    user_name=name,
                    allowed=self._policy.permits(click.channel, click.user),
                    surface=self._delivery.surface,
                    sink=sink,
                )
            except asyncio.CancelledError:
                # The resumed turn stored nothing and the request is still pending: the
                # prompt keeps its buttons, to be clicked again once the bot is back.
                await self._delivery.cut_short(writer)
                raise
            if reply.kind in {ReplyKind.ANSWER, ReplyKind.APPROVAL}:
                line = decided_line(click.decision, name)
                await self._delivery.end_prompt(click.channel, click.ts, click.text, line)
                await self._delivery.show(reply, writer, dest)
            elif reply.kind is ReplyKind.ERROR and writer.posted:
                # The resumed turn failed partway: the failure replaces what had streamed,
                # and the buttons stay, as the request is still pending.
                await writer.finish(reply)
            elif reply.shown:
                # "Only Ann can approve this", "already answered", a failure before anything
                # showed: for the clicker's eyes only; the prompt stays as it was.
                await self._tell_clicker(click, to_mrkdwn(reply.text), respond)

    async def _tell_clicker(self, click: Click, text: str, respond: AsyncRespond) -> None:
        dest = Destination(click.channel, click.thread_ts, click.team, click.user)
        if not await self._delivery.ephemeral(dest, text):
            with contextlib.suppress(Exception):
                await respond(text=text, response_type="ephemeral", replace_original=False)

    async def settled(
        self, request: ApprovalRequest, address: str, outcome: ApprovalEnding, reply: Reply | None
    ) -> None:
        """Mark the prompt at `address` as expired or cancelled, and post `reply` if given."""
        where = PromptAddress.decode(address)
        if where is None:
            logger.warning(
                "Approval %s %s, but where its prompt is cannot be read: %r",
                request.approval_id,
                outcome.value,
                address[:200],
            )
            return
        await self._delivery.end_prompt(where.channel, where.ts, where.text, ENDINGS[outcome])
        if reply is not None and reply.shown:
            dest = Destination(where.channel, where.thread_ts, "", request.requester_id)
            await self._inflight.run(self._delivery.show_complete(reply, dest))
