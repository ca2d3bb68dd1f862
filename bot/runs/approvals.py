"""Turns paused for a tool approval: the record kept while they wait, and who may decide.

A run that reaches a tool needing approval stops; the SDK's `RunState`, the turn's items so far
and its instructions are kept in the database (nothing enters the thread's memory yet), so a
click still works after a restart or on another worker. Images in it are kept as the thread
keeps them, as one-line placeholders: the model saw them before it asked for the tool. The rules:

- **Who decides**: `BOT_APPROVERS=asker` (default) lets only the person who asked approve or
  reject; `allowed` lets anyone the platform's allow-lists let talk to the bot.
- **A new message in the thread while one is pending** cancels it: the call is stored as not
  run (so the model knows), the prompt says so, and the new message is answered as usual.
  Waiting instead would leave the thread stuck behind a click that may never come.
- **Expiry**: after `BOT_APPROVAL_TIMEOUT` the calls are rejected, the model is told and
  answers, and the answer is posted into the thread.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from agents import ToolApprovalItem

from ..messages import ApprovalOutlet, ApprovalRequest, ToolRequest
from ..storage import Author, Item, PendingApproval

logger = logging.getLogger(__name__)

ARGUMENT_CHARS: Final = 300
ALREADY_DECIDED: Final = "That request was already answered, cancelled or expired."
NOT_YOURS: Final = "Only {name} can approve or reject this."
NOT_ALLOWED: Final = "You can't approve or reject tool calls here."
REJECTED: Final = "{name} rejected this tool call, so it was not run."
EXPIRED: Final = "Nobody approved this tool call within {minutes}, so it was not run."
INTERRUPTED: Final = (
    "I stopped while {tools} was running, so it may or may not have completed. "
    "Please check before asking me to run it again."
)
"""To the person, after a restart, about an approved call that was running."""
INTERRUPTED_OUTPUT: Final = (
    "The bot stopped while this call was running, so it may or may not have completed."
)
"""To the model, as the call's result, for the same."""
UNSHOWN: Final = (
    "I needed someone's OK to run {tools}, but I couldn't show the Approve and Reject buttons "
    "here, so I didn't run it. An admin may need to check my permissions in this channel; "
    "then ask again."
)
"""To the person, when the platform refused the prompt itself."""
UNSHOWN_OUTPUT: Final = (
    "Not run: the approval prompt could not be shown, so nobody could approve this call."
)
"""To the model, as the call's result, for the same."""
CANCELLED: Final = (
    "Not run: {name} sent a new message before this tool call was approved, which cancelled it."
)


@dataclass(frozen=True)
class ApprovalSettings:
    timeout: float
    """Seconds before a pending approval expires."""
    approvers: str
    """`asker` or `allowed` (see the module docstring)."""


class ApprovalDesk:
    """Keeps paused turns and applies the rules; the core runs them."""

    def __init__(self, settings: ApprovalSettings) -> None:
        self._settings = settings
        self._outlets: dict[str, ApprovalOutlet] = {}

    @property
    def settings(self) -> ApprovalSettings:
        return self._settings

    def attach(self, platform: str, outlet: ApprovalOutlet) -> None:
        self._outlets[platform] = outlet

    def outlet(self, platform: str) -> ApprovalOutlet | None:
        return self._outlets.get(platform)

    def record(
        self,
        *,
        session_id: str,
        platform: str,
        requester: Author,
        interruptions: Sequence[ToolApprovalItem],
        state: dict[str, Any],
        items: Sequence[Item],
        instructions: str,
        profile: str | None = None,
        now: datetime | None = None,
    ) -> PendingApproval:
        """What to keep for a run that just paused."""
        calls = [
            {
                "name": item.tool_name or "tool",
                "arguments": _short(item.arguments or ""),
                "call_id": getattr(item.raw_item, "call_id", None),
            }
            for item in interruptions
        ]
        return PendingApproval(
            approval_id=secrets.token_urlsafe(12),
            session_id=session_id,
            platform=platform,
            requester=requester,
            calls=json.dumps(calls),
            state=json.dumps(state),
            items=json.dumps(list(items)),
            instructions=instructions,
            profile=profile,
            expires_at=(now or datetime.now(UTC)) + timedelta(seconds=self._settings.timeout),
        )

    def request(self, record: PendingApproval) -> ApprovalRequest:
        """The record as adapters show it."""
        return ApprovalRequest(
            approval_id=record.approval_id,
            calls=tuple(ToolRequest(c["name"], c["arguments"]) for c in json.loads(record.calls)),
            requester_id=record.requester.id,
            requester_name=record.requester.name,
            expires_at=record.expires_at,
            approvers=self._settings.approvers,
        )

    def refusal(self, record: PendingApproval, user_id: str, allowed: bool) -> str | None:
        """Why this person may not decide, or None when they may."""
        if user_id == record.requester.id:
            return None
        if self._settings.approvers == "allowed":
            return None if allowed else NOT_ALLOWED
        return NOT_YOURS.format(name=record.requester.name)

    def span(self) -> str:
        """The timeout in words: "15 minutes"."""
        minutes = self._settings.timeout / 60
        if minutes >= 1:
            return f"{minutes:g} minute{'s' if minutes != 1 else ''}"
        return f"{self._settings.timeout:g} seconds"

    def expiry_message(self) -> str:
        return EXPIRED.format(minutes=self.span())


def prompt_text(request: ApprovalRequest, *, before: str = "", wait: str) -> str:
    """What the thread shows while a call waits: the model's words so far, then the ask."""
    if len(request.calls) == 1:
        call = request.calls[0]
        ask = f"I'd like to run `{call.name}` with `{call.arguments}`."
    else:
        lines = "\n".join(f"- `{call.name}` with `{call.arguments}`" for call in request.calls)
        ask = f"I'd like to run these tools:\n{lines}"
    who = (
        request.requester_name
        if request.approvers == "asker"
        else f"{request.requester_name} or anyone allowed here"
    )
    text = f"{ask}\n{who}, approve or reject? (If nobody does within {wait}, it is rejected.)"
    return f"{before.strip()}\n\n{text}" if before.strip() else text


def waiting_calls(record: PendingApproval) -> list[str]:
    """The call IDs a pending approval covers."""
    return [str(call["call_id"]) for call in json.loads(record.calls) if call.get("call_id")]


def not_run_outputs(record: PendingApproval, reason: str) -> list[Item]:
    """A result for each waiting call saying it was not run, so the model knows."""
    return [
        {"type": "function_call_output", "call_id": call_id, "output": reason}
        for call_id in waiting_calls(record)
    ]


def _short(arguments: str) -> str:
    try:
        compact = json.dumps(json.loads(arguments), ensure_ascii=False, separators=(", ", ": "))
    except ValueError:
        compact = arguments
    compact = " ".join(compact.split())
    return compact if len(compact) <= ARGUMENT_CHARS else compact[: ARGUMENT_CHARS - 1] + "…"
