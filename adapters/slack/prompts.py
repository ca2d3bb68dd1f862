"""Approval prompts in Slack: the Block Kit buttons, posting them, what a click says, the end.

A tool that needs approval pauses the turn. `post_prompt` shows the core's prompt text as a
`section` block over an `actions` block with two buttons (Approve, Reject) whose `value` is the
approval's ID, and tells the core where it is as a `PromptAddress` (JSON). A click comes back as
a `block_actions` payload, over HTTP or Socket Mode alike (bolt routes both to the same
listener), and `read_click` turns it into a `Click`; what follows is `approvals`'.

However it ends, the prompt keeps its text, loses its buttons and gains one line saying how
(`end_prompt`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapter import ApprovalEnding, Core, Decision, Reply, ReplyKind

from .stream import AnswerWriter, Destination, error_code
from .text import escape, to_mrkdwn

logger = logging.getLogger(__name__)

APPROVE = "approval_approve"
REJECT = "approval_reject"
DECISIONS: Mapping[str, Decision] = {APPROVE: Decision.APPROVE, REJECT: Decision.REJECT}
"""The buttons' `action_id`s and what each one decides."""
SECTION_CHARS = 3_000
"""Block Kit's limit on a section block's text."""
PROMPT_CHARS = 2_600
"""Where the prompt's Markdown is cut, leaving room for mrkdwn's escaping within the limit."""
ENDINGS: Mapping[ApprovalEnding, str] = {
    ApprovalEnding.EXPIRED: "⌛ Expired — not run",
    ApprovalEnding.CANCELLED: "Cancelled — a new message came in",
    ApprovalEnding.WITHDRAWN: "↩️ Withdrawn — not run",
    ApprovalEnding.INTERRUPTED: "⚠️ Interrupted — may or may not have run",
}


def prompt_markdown(text: str) -> str:
    """The core's prompt text, cut to fit one section block once converted to mrkdwn."""
    return text if len(text) <= PROMPT_CHARS else text[: PROMPT_CHARS - 1].rstrip() + "…"


def prompt_blocks(text: str, approval_id: str) -> list[dict[str, Any]]:
    """The prompt: `text` (mrkdwn) over an Approve and a Reject button carrying the ID."""
    return [
        _section(text),
        {
            "type": "actions",
            "block_id": f"approval_{approval_id}",
            "elements": [
                _button("Approve", APPROVE, approval_id, "primary"),
                _button("Reject", REJECT, approval_id, "danger"),
            ],
        },
    ]


def ended_blocks(text: str, ending: str) -> list[dict[str, Any]]:
    """An ended prompt: its text, no buttons, and a line saying how it ended."""
    return [
        _section(text),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": ending}]},
    ]


def decided_line(decision: Decision, name: str) -> str:
    """The line an ended prompt shows after a click: ``✅ Approved by Ann``."""
    if decision is Decision.APPROVE:
        return f"✅ Approved by {escape(name)}"
    return f"❌ Rejected by {escape(name)}"


def _section(text: str) -> dict[str, Any]:
    return {
        "type": "section",
        "block_id": "approval_prompt",
        "text": {"type": "mrkdwn", "text": text[:SECTION_CHARS]},
    }


def _button(label: str, action_id: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "style": style,
        "value": value,
    }


@dataclass(frozen=True)
class PromptAddress:
    """Where a prompt is, as the adapter gives it to `Core.approval_posted()`.

    Attributes:
        channel: The conversation it was posted in.
        thread_ts: The thread it is in; None for a top-level prompt in a DM.
        ts: The prompt message's own ts.
        text: The prompt's text as shown (mrkdwn), so it can be shown again with its ending
            after a restart without reading the message back from Slack.
    """

    channel: str
    thread_ts: str | None
    ts: str
    text: str

    def encode(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str) -> PromptAddress | None:
        """The address `encode` wrote, or None when `raw` is not one."""
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        channel, ts, text = data.get("channel"), data.get("ts"), data.get("text", "")
        thread_ts = data.get("thread_ts")
        if not (isinstance(channel, str) and channel and isinstance(ts, str) and ts):
            return None
        if not isinstance(thread_ts, str | None) or not isinstance(text, str):
            return None
        return cls(channel, thread_ts, ts, text)


@dataclass(frozen=True)
class Click:
    """One click on a prompt's button, read from a `block_actions` payload."""

    approval_id: str
    decision: Decision
    user: str
    user_name: str
    """The clicker's handle from the payload; the adapter looks up the display name."""
    team: str
    channel: str
    ts: str
    """The prompt message's ts."""
    thread_ts: str | None
    """The prompt's thread, where the answer goes; None for a top-level prompt in a DM."""
    text: str
    """The prompt's text as shown, kept when the buttons go."""


def read_click(body: Mapping[str, Any], action: Mapping[str, Any]) -> Click | None:
    """The click in a `block_actions` payload, or None when it is not on one of our prompts."""
    decision = DECISIONS.get(str(action.get("action_id") or ""))
    approval_id = str(action.get("value") or "")
    user: Mapping[str, Any] = body.get("user") or {}
    container: Mapping[str, Any] = body.get("container") or {}
    message: Mapping[str, Any] = body.get("message") or {}
    channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
    ts = str(container.get("message_ts") or message.get("ts") or "")
    user_id = str(user.get("id") or "")
    if decision is None or not approval_id or not user_id or not channel or not ts:
        return None
    thread_ts = message.get("thread_ts") or container.get("thread_ts")
    team = (body.get("team") or {}).get("id") or user.get("team_id") or ""
    return Click(
        approval_id=approval_id,
        decision=decision,
        user=user_id,
        user_name=str(user.get("name") or user.get("username") or user_id),
        team=str(team),
        channel=channel,
        ts=ts,
        thread_ts=str(thread_ts) if thread_ts else None,
        text=_shown_text(message),
    )


def _shown_text(message: Mapping[str, Any]) -> str:
    for block in message.get("blocks") or []:
        if block.get("type") == "section":
            text = (block.get("text") or {}).get("text")
            if isinstance(text, str):
                return text
    return str(message.get("text") or "")


async def end_prompt(client: AsyncWebClient, channel: str, ts: str, text: str, ending: str) -> bool:
    """Take the buttons off a prompt and add the line saying how it ended."""
    try:
        await client.chat_update(
            channel=channel, ts=ts, text=f"{text}\n{ending}", blocks=ended_blocks(text, ending)
        )
    except SlackApiError as exc:
        logger.warning("Could not mark the prompt %s in %s: %s", ts, channel, error_code(exc))
        return False
    return True


async def post_prompt(core: Core, reply: Reply, writer: AnswerWriter, dest: Destination) -> None:
    """Show a paused turn's prompt (in place of what streamed) and tell the core where it is."""
    approval = reply.approval
    if approval is None:
        logger.error("An approval reply came without its request; showing its text")
        await writer.finish(Reply(reply.text, ReplyKind.NOTICE))
        return
    markdown = prompt_markdown(reply.text)
    text = to_mrkdwn(markdown)
    ts = await writer.show_prompt(markdown, prompt_blocks(text, approval.approval_id))
    if ts is None:
        # Tried twice, beyond slack_sdk's own retries: a prompt nobody can click ends its turn.
        notice = await core.approval_unshown(approval.approval_id)
        if notice is not None:
            await writer.finish(notice)
        return
    address = PromptAddress(dest.channel, dest.thread_ts, ts, text)
    await core.approval_posted(approval.approval_id, address.encode())
