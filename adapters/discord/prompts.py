"""Approval prompts on Discord: the Approve / Reject buttons, posting them, how they end.

A paused turn is shown as its prompt text with one action row of two buttons whose custom IDs
carry the decision and the approval ID (`approval:approve:<id>`). The buttons are a
`discord.ui.DynamicItem`, registered once with `Client.add_dynamic_items()`: that is what
discord.py documents for persistent components whose state lives in the custom ID
(`examples/views/dynamic_counter.py`). A view registered with `add_view()` needs its custom IDs
known at start-up, and `on_interaction` would re-implement the library's dispatch; a dynamic
item matches any approval ID by its template, so a prompt posted before a restart still works
after it, with nothing to reload. The approval itself (and the paused run) lives in the core's
store; the prompt's address (channel and message ID, as JSON) lets the core's outlet
(`approvals`) find it again when the approval expires or is cancelled.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import discord

from bot.adapter import ApprovalEnding, ApprovalRequest, Core, Decision, Reply

from .stream import DiscordReply
from .text import MAX_MESSAGE_CHARS

logger = logging.getLogger(__name__)

CUSTOM_ID = re.compile(
    r"approval:(?P<decision>approve|reject):(?P<approval_id>[A-Za-z0-9._~-]{1,84})"
)
"""What the buttons carry; Discord allows 100 characters, the prefix takes 16 at most."""
BUTTON_TRIES = 2
"""Tries at putting the buttons on a prompt before its turn ends unasked: one more than
discord.py's, which retries only 429s and some 5xx, never a 403, a 503 or a dropped connection."""
OUTCOME_LINES = {
    ApprovalEnding.EXPIRED: "⌛ Expired — not run",
    ApprovalEnding.CANCELLED: "🚫 Cancelled — a new message came in",
    ApprovalEnding.WITHDRAWN: "↩️ Withdrawn — not run",
    ApprovalEnding.INTERRUPTED: "⚠️ Interrupted — may or may not have run",
}


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


def approval_view(approval_id: str) -> discord.ui.View:
    """One action row: Approve (green), Reject (red). No timeout: the core decides expiry."""
    view = discord.ui.View(timeout=None)
    view.add_item(ApprovalButton(Decision.APPROVE, approval_id))
    view.add_item(ApprovalButton(Decision.REJECT, approval_id))
    return view


async def post_prompt(
    core: Core, stream: DiscordReply, reply: Reply, request: ApprovalRequest
) -> None:
    """Show a paused turn's prompt with its buttons, and tell the core where it is.

    The text is posted with the streamer's own second try and the buttons get `BUTTON_TRIES`;
    a prompt still without its buttons could never be answered, so its turn ends at once and
    the prompt's text gives way to a plain line saying so."""
    shown = await stream.finish(prompt_text(reply, request))
    message = await _with_buttons(stream, request.approval_id) if shown else None
    if message is None:
        notice = await core.approval_unshown(request.approval_id)
        if notice is not None and not await stream.finish(notice.text):
            logger.error(
                "Could not say either that the prompt of approval %s was refused",
                request.approval_id,
            )
        return
    address = PromptAddress(message.channel.id, message.id)
    await core.approval_posted(request.approval_id, address.dumps())


async def _with_buttons(stream: DiscordReply, approval_id: str) -> discord.Message | None:
    """The prompt's message once it carries the buttons; None when every try failed."""
    for _ in range(BUTTON_TRIES):
        try:
            message = await stream.attach(approval_view(approval_id))
        except Exception as exc:  # no answer at all (a dropped connection) as well as a refusal
            logger.warning(
                "Adding the buttons of approval %s failed: %s: %s",
                approval_id,
                type(exc).__name__,
                exc,
            )
            continue
        if message is not None or stream.last is None:
            return message
    return None
