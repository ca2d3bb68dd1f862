"""Tool calls waiting for approval, and rejecting one: approving stays with the people in the
chat, who see what the call is for."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from ..storage import PendingApproval, ThreadBusyError
from .page import FORM, Page, go

HOLD_SECONDS = 10.0


@dataclass(frozen=True)
class Call:
    name: str
    arguments: str


@dataclass(frozen=True)
class Waiting:
    approval: PendingApproval
    calls: list[Call]
    running: datetime | None


def routes(page: Page) -> list[web.RouteDef]:
    store = page.store

    async def listing(request: web.Request) -> web.Response:
        waiting = [
            Waiting(a, _calls(a.calls), a.running_since) for a in await store.waiting_approvals()
        ]
        return page.render(request, "approvals.html", waiting=waiting, now=page.clock())

    async def confirm(request: web.Request) -> web.Response:
        approval = await store.approval(request.query.get("id", ""))
        if approval is None:
            raise go("/approvals", note="gone")
        calls = ", ".join(call.name for call in _calls(approval.calls))
        return page.render(
            request,
            "confirm.html",
            title="Reject this tool call?",
            text=(
                f"{approval.requester.name} asked for {calls} in {approval.session_id}. "
                "Rejected, the call never runs and the turn that asked for it is not stored."
            ),
            action="/approvals/reject",
            fields={"id": approval.approval_id},
            button="Reject the call",
            back="/approvals",
        )

    async def reject(request: web.Request) -> web.Response:
        approval_id = request[FORM].get("id", "")
        approval = await store.approval(approval_id)
        if approval is None or approval.running_since is not None:
            raise go("/approvals", note="gone")
        try:
            # A click resuming it holds the thread (on every worker, on PostgreSQL).
            async with store.hold_thread(approval.session_id, wait=HOLD_SECONDS):
                withdrawn = await store.withdraw_approval(approval.session_id)
        except ThreadBusyError:
            raise go("/approvals", note="busy") from None
        if withdrawn is None or withdrawn.approval_id != approval.approval_id:
            raise go("/approvals", note="gone")
        page.audit(request, f"rejected tool call {approval_id} in {approval.session_id}")
        raise go("/approvals", note="rejected")

    return [
        web.get("/approvals", listing),
        web.get("/approvals/reject", confirm),
        web.post("/approvals/reject", reject),
    ]


def _calls(raw: str) -> list[Call]:
    """The waiting calls as stored (name and shortened arguments each)."""
    try:
        listed: Any = json.loads(raw)
    except json.JSONDecodeError:
        return []
    if not isinstance(listed, list):
        return []
    return [
        Call(str(call.get("name", "?")), str(call.get("arguments", "")))
        for call in listed
        if isinstance(call, dict)
    ]
