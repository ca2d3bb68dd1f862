"""Tool approvals in the core: pause, approve, reject, expire, cancel, and across a restart.

Real `Runner` and `openai` client against the fake model, real SQLite; a `@function_tool` with
`needs_approval=True` stands for any tool that needs a person's OK.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from agents import FunctionTool, function_tool

from bot.messages import (
    ApprovalEnding,
    ApprovalRequest,
    Attachment,
    Decision,
    IncomingMessage,
    Reply,
    ReplyKind,
    Surface,
)
from tests.fakes.openai_server import (
    FakeOpenAI,
    Fault,
    ToolCall,
    image_urls,
    message_text,
    reply_from_history,
)
from tests.support.parts import BotParts, make_config
from tests.support.sinks import Recorder

CHAT = Surface(max_chars=2000)
THREAD = "console:approvals"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
"""The smallest valid PNG (1x1, one transparent pixel), base64-encoded."""


@dataclass
class Tickets:
    """A tool that needs approval and one that does not, recording what actually ran."""

    deleted: list[str] = field(default_factory=list)
    looked_up: list[str] = field(default_factory=list)

    def tools(self) -> list[FunctionTool]:
        @function_tool(needs_approval=True)
        async def delete_ticket(ticket: str) -> str:
            """Delete a ticket for good.

            Args:
                ticket: The ticket's ID.
            """
            self.deleted.append(ticket)
            return f"Ticket {ticket} deleted."

        @function_tool
        async def lookup_ticket(ticket: str) -> str:
            """Look a ticket up.

            Args:
                ticket: The ticket's ID.
            """
            self.looked_up.append(ticket)
            return f"Ticket {ticket}: open, assigned to Dana."

        return [delete_ticket, lookup_ticket]


def ticket_model(messages: list[dict[str, Any]]) -> str | ToolCall | Fault:
    """Calls a tool when asked to, and answers with what the tool said."""
    last = messages[-1] if messages else {}
    if last.get("role") == "tool" or last.get("type") == "function_call_output":
        return f"Tool said: {message_text(last) or last.get('output', '')}"
    text = message_text(last) if last.get("role") == "user" else ""
    if "delete T-" in text:
        return ToolCall("delete_ticket", {"ticket": text.split("delete ")[1].split()[0]})
    if "look up T-" in text:
        return ToolCall("lookup_ticket", {"ticket": text.split("look up ")[1].split()[0]})
    return reply_from_history(messages)


class Outlet:
    def __init__(self) -> None:
        self.ended: list[tuple[str, str, ApprovalEnding, Reply | None]] = []

    async def settled(
        self, request: ApprovalRequest, address: str, outcome: ApprovalEnding, reply: Reply | None
    ) -> None:
        self.ended.append((request.approval_id, address, outcome, reply))


@pytest.fixture
async def model() -> Any:
    async with FakeOpenAI(ticket_model) as fake:
        yield fake


async def start(
    model: FakeOpenAI, path: Path, tickets: Tickets, **overrides: Any
) -> tuple[BotParts, Outlet]:
    parts = await BotParts(make_config(model, path, **overrides), tools=tickets.tools()).start()
    outlet = Outlet()
    parts.core.attach_outlet("console", outlet)
    return parts, outlet


async def say(parts: BotParts, text: str, author: str = "Ann", sink: Any = None) -> Reply:
    message = IncomingMessage("console", THREAD, f"id-{author}", author, text)
    return await parts.core.handle(message, CHAT, sink)


async def stored(parts: BotParts) -> list[dict[str, Any]]:
    return [entry.item for entry in await parts.store.history(THREAD, limit=100)]


async def paused(parts: BotParts, text: str = "please delete T-7") -> ApprovalRequest:
    reply = await say(parts, text)
    assert reply.kind is ReplyKind.APPROVAL, reply
    assert reply.approval is not None
    await parts.core.approval_posted(reply.approval.approval_id, "prompt-1")
    return reply.approval


async def restarted_after_a_crash_in_the_call(
    model: FakeOpenAI, tmp_path: Path, tickets: Tickets
) -> tuple[BotParts, Outlet, ApprovalRequest]:
    """A bot started again after its process died inside an approved call: what that leaves
    behind is the approval marked running, and no turn."""
    path = tmp_path / "m.sqlite3"
    parts, _ = await start(model, path, tickets)
    request = await paused(parts)
    await parts.store.approval_running(request.approval_id, datetime.now(UTC))
    await parts.close()
    parts, outlet = await start(model, path, tickets)
    return parts, outlet, request


async def test_a_tool_needing_approval_pauses_and_stores_nothing(
    model: FakeOpenAI, tmp_path: Path
) -> None:
    tickets = Tickets()
    parts, _ = await start(model, tmp_path / "m.sqlite3", tickets)
    try:
        reply = await say(parts, "please delete T-7")
        assert reply.kind is ReplyKind.APPROVAL
        assert reply.approval is not None
        assert [(c.name, c.arguments) for c in reply.approval.calls] == [
            ("delete_ticket", '{"ticket": "T-7"}')
        ]
        assert reply.approval.requester_name == "Ann"
        assert "delete_ticket" in reply.text
        assert "approve or reject" in reply.text
        assert tickets.deleted == []
        assert await stored(parts) == []
    finally:
        await parts.close()


async def test_approving_runs_the_tool_and_stores_the_whole_turn(
    model: FakeOpenAI, tmp_path: Path
) -> None:
    tickets = Tickets()
    parts, _ = await start(model, tmp_path / "m.sqlite3", tickets)
    try:
        request = await paused(parts)
        sink = Recorder()
        reply = await parts.core.decide(
            request.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann", sink=sink
        )
        assert reply.kind is ReplyKind.ANSWER
        assert reply.text == "Tool said: Ticket T-7 deleted."
        assert sink.text == reply.text
        assert tickets.deleted == ["T-7"]
        items = await stored(parts)
        assert [i.get("role") or i.get("type") for i in items] == [
            "user",
            "function_call",
            "function_call_output",
            "assistant",
        ]
        # A second click finds nothing left to decide, and runs nothing again.
        again = await parts.core.decide(
            request.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
        )
        assert again.kind is ReplyKind.NOTICE
        assert tickets.deleted == ["T-7"]
        # /undo takes the call, its output and the answer with the message.
        await say(parts, "/undo")
        assert await stored(parts) == []
    finally:
        await parts.close()


async def test_rejecting_tells_the_model_and_runs_nothing(
    model: FakeOpenAI, tmp_path: Path
) -> None:
    tickets = Tickets()
    parts, _ = await start(model, tmp_path / "m.sqlite3", tickets)
    try:
        request = await paused(parts)
        reply = await parts.core.decide(
            request.approval_id, Decision.REJECT, user_id="id-Ann", user_name="Ann"
        )
        assert reply.kind is ReplyKind.ANSWER
        assert "Ann rejected this tool call" in reply.text
        assert tickets.deleted == []
        output = [i for i in await stored(parts) if i.get("type") == "function_call_output"]
        assert "rejected" in str(output[0]["output"])
    finally:
        await parts.close()


async def test_only_the_asker_decides_unless_anyone_allowed_may(
    model: FakeOpenAI, tmp_path: Path
) -> None:
    tickets = Tickets()
    parts, _ = await start(model, tmp_path / "asker.sqlite3", tickets)
    try:
        request = await paused(parts)
        other = await parts.core.decide(
            request.approval_id, Decision.APPROVE, user_id="id-Bob", user_name="Bob"
        )
        assert other.kind is ReplyKind.NOTICE
        assert other.text == "Only Ann can approve or reject this."
        assert tickets.deleted == []
        assert await parts.store.approval(request.approval_id) is not None
    finally:
        await parts.close()
    tickets = Tickets()
    parts, _ = await start(model, tmp_path / "allowed.sqlite3", tickets, approvers="allowed")
    try:
        request = await paused(parts)
        refused = await parts.core.decide(
            request.approval_id, Decision.APPROVE, user_id="id-Eve", user_name="Eve", allowed=False
        )
        assert refused.kind is ReplyKind.NOTICE
        reply = await parts.core.decide(
            request.approval_id, Decision.APPROVE, user_id="id-Bob", user_name="Bob", allowed=True
        )
        assert reply.kind is ReplyKind.ANSWER
        assert tickets.deleted == ["T-7"]
    finally:
        await parts.close()


async def test_an_approval_survives_a_restart(model: FakeOpenAI, tmp_path: Path) -> None:
    path = tmp_path / "restart.sqlite3"
    first = Tickets()
    parts, _ = await start(model, path, first)
    try:
        await say(parts, "remember the code ZX-1")
        request = await paused(parts)
    finally:
        await parts.close()
    second = Tickets()
    parts, _ = await start(model, path, second)
    try:
        reply = await parts.core.decide(
            request.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
        )
        assert reply.text == "Tool said: Ticket T-7 deleted."
        assert (first.deleted, second.deleted) == ([], ["T-7"])
        # The resumed request still carried the thread's earlier exchange.
        assert "remember the code ZX-1" in json.dumps(model.requests[-1].messages)
        assert len(await stored(parts)) == 6
    finally:
        await parts.close()


async def test_a_new_message_cancels_the_pending_call(model: FakeOpenAI, tmp_path: Path) -> None:
    tickets = Tickets()
    parts, outlet = await start(model, tmp_path / "m.sqlite3", tickets)
    try:
        request = await paused(parts)
        reply = await say(parts, "never mind, what did I ask?", author="Ann")
        assert reply.kind is ReplyKind.ANSWER
        assert "please delete T-7" in reply.text  # the cancelled message stayed in memory
        assert tickets.deleted == []
        items = await stored(parts)
        outputs = [i for i in items if i.get("type") == "function_call_output"]
        assert "Not run" in str(outputs[0]["output"])
        await parts.core.idle()
        await _settled(parts)
        assert [(a, o) for a, _, o, _ in outlet.ended] == [
            (request.approval_id, ApprovalEnding.CANCELLED)
        ]
        late = await parts.core.decide(
            request.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
        )
        assert late.kind is ReplyKind.NOTICE
        assert tickets.deleted == []
    finally:
        await parts.close()


@pytest.mark.parametrize("command", ["/undo", "/forget"])
async def test_undo_or_forget_takes_back_the_waiting_turn(
    model: FakeOpenAI, tmp_path: Path, command: str
) -> None:
    tickets = Tickets()
    parts, outlet = await start(model, tmp_path / "m.sqlite3", tickets)
    try:
        await say(parts, "remember the number 7")
        before = await stored(parts)
        request = await paused(parts)
        reply = await say(parts, command)
        assert reply.kind is ReplyKind.COMMAND
        assert reply.text.endswith("The tool call waiting for approval was not run.")
        if command == "/undo":
            assert reply.text.startswith("Undone: I removed Ann's message “please delete T-7”")
            assert await stored(parts) == before  # the exchange before it stays
        else:
            assert await stored(parts) == []
        assert await parts.store.approval_in(THREAD) is None
        await _settled(parts)
        assert [(a, o) for a, _, o, _ in outlet.ended] == [
            (request.approval_id, ApprovalEnding.WITHDRAWN)
        ]
        late = await parts.core.decide(
            request.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
        )
        assert late.kind is ReplyKind.NOTICE
        assert tickets.deleted == []
        if command == "/undo":
            again = await say(parts, "/undo")  # now the exchange before it
            assert again.text.startswith("Undone: I removed Ann's message “remember the number 7”")
    finally:
        await parts.close()


@pytest.mark.parametrize("model_api", ["chat_completions", "responses"])
async def test_a_paused_turn_keeps_placeholders_not_its_images(
    model: FakeOpenAI, tmp_path: Path, model_api: str
) -> None:
    tickets = Tickets()
    parts, _ = await start(model, tmp_path / "m.sqlite3", tickets, model_api=model_api)
    try:
        png = base64.b64decode(PNG)

        async def fetch(limit: int) -> bytes:
            return png

        photo = Attachment("receipt.png", "image/png", len(png), fetch)
        message = IncomingMessage(
            "console", THREAD, "id-Ann", "Ann", "please delete T-7", attachments=(photo,)
        )
        reply = await parts.core.handle(message, CHAT)
        assert reply.kind is ReplyKind.APPROVAL
        assert reply.approval is not None
        assert image_urls(model.requests[-1].messages[-1])  # the model saw it
        record = await parts.store.approval_in(THREAD)
        assert record is not None
        for kept in (record.state, record.items):
            assert PNG not in kept
            assert "[image: receipt.png, 68 bytes]" in kept
        done = await parts.core.decide(
            reply.approval.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
        )
        assert done.text == "Tool said: Ticket T-7 deleted."
        assert not any(image_urls(m) for m in model.requests[-1].messages)
        assert PNG not in json.dumps(await stored(parts))
    finally:
        await parts.close()


@pytest.mark.parametrize("told_by", ["sweep", "click"])
async def test_an_approved_call_whose_process_died_is_told_not_asked_again(
    model: FakeOpenAI, tmp_path: Path, told_by: str
) -> None:
    tickets = Tickets()
    parts, outlet, request = await restarted_after_a_crash_in_the_call(model, tmp_path, tickets)
    try:
        line = (
            "I stopped while delete_ticket was running, so it may or may not have completed. "
            "Please check before asking me to run it again."
        )
        if told_by == "sweep":
            assert await parts.core.expire_approvals() == 1
            await _settled(parts)
            [(approval_id, address, ending, reply)] = outlet.ended
            assert (approval_id, address, ending) == (
                request.approval_id,
                "prompt-1",
                ApprovalEnding.INTERRUPTED,
            )
            assert reply is not None
            assert reply.text == line
        else:
            clicked = await parts.core.decide(
                request.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
            )
            assert clicked.text == line
        items = await stored(parts)
        assert [i.get("role") or i.get("type") for i in items] == [
            "user",
            "function_call",
            "function_call_output",
        ]
        assert "may or may not have completed" in str(items[-1]["output"])
        again = await parts.core.decide(
            request.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
        )
        assert again.kind is ReplyKind.NOTICE
        assert tickets.deleted == []
        assert await parts.core.expire_approvals() == 0
    finally:
        await parts.close()


async def test_undo_of_a_call_cut_off_by_a_stop_does_not_say_it_was_not_run(
    model: FakeOpenAI, tmp_path: Path
) -> None:
    tickets = Tickets()
    parts, outlet, _ = await restarted_after_a_crash_in_the_call(model, tmp_path, tickets)
    try:  # restarted, and no sweep has run yet
        reply = await say(parts, "/undo")
        assert reply.text.endswith(
            "Its approved tool call was running when I stopped, so it may or may not have "
            "completed."
        )
        await _settled(parts)
        assert [o for _, _, o, _ in outlet.ended] == [ApprovalEnding.INTERRUPTED]
    finally:
        await parts.close()


async def test_expiry_rejects_and_posts_the_models_answer(
    model: FakeOpenAI, tmp_path: Path
) -> None:
    tickets = Tickets()
    parts, outlet = await start(model, tmp_path / "m.sqlite3", tickets, approval_timeout=600.0)
    try:
        request = await paused(parts)
        assert await parts.core.expire_approvals(now=datetime.now(UTC)) == 0
        later = datetime.now(UTC) + timedelta(minutes=11)
        assert await parts.core.expire_approvals(now=later) == 1
        await _settled(parts)
        [(approval_id, address, outcome, reply)] = outlet.ended
        assert (approval_id, address, outcome) == (
            request.approval_id,
            "prompt-1",
            ApprovalEnding.EXPIRED,
        )
        assert reply is not None
        assert reply.kind is ReplyKind.ANSWER
        assert "Nobody approved this tool call within 10 minutes" in reply.text
        assert tickets.deleted == []
        assert len(await stored(parts)) == 4
        late = await parts.core.decide(
            request.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
        )
        assert late.kind is ReplyKind.NOTICE
    finally:
        await parts.close()


async def test_a_failed_resume_keeps_the_approval_pending(
    model: FakeOpenAI, tmp_path: Path
) -> None:
    tickets = Tickets()
    parts, _ = await start(model, tmp_path / "m.sqlite3", tickets)
    try:
        request = await paused(parts)
        # Rejecting runs nothing, so a failure leaves the decision open to be made again.
        model.fail_next(Fault(status=500))
        failed = await parts.core.decide(
            request.approval_id, Decision.REJECT, user_id="id-Ann", user_name="Ann"
        )
        assert failed.kind is ReplyKind.ERROR
        assert await stored(parts) == []
        assert await parts.store.approval(request.approval_id) is not None
        reply = await parts.core.decide(
            request.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
        )
        assert reply.kind is ReplyKind.ANSWER
        assert tickets.deleted == ["T-7"]
    finally:
        await parts.close()


async def test_an_approved_tool_never_runs_twice_when_the_answer_fails(
    model: FakeOpenAI, tmp_path: Path
) -> None:
    tickets = Tickets()
    parts, _ = await start(model, tmp_path / "m.sqlite3", tickets)
    try:
        request = await paused(parts)
        model.fail_next(Fault(status=500))
        reply = await parts.core.decide(
            request.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
        )
        assert tickets.deleted == ["T-7"]
        assert "The tool did run" in reply.text
        # The tool's result is kept; the approval is settled, so a second click runs nothing.
        kinds = [i.get("role") or i.get("type") for i in await stored(parts)]
        assert kinds == ["user", "function_call", "function_call_output"]
        # So is what the request before the pause cost, for the person who asked.
        last = (await parts.store.dump_thread(THREAD)).messages[-1]
        assert last.usage is not None
        assert last.usage.input_tokens == model.completed[0].prompt_tokens
        assert last.asked_by == "id-Ann"
        again = await parts.core.decide(
            request.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
        )
        assert again.kind is ReplyKind.NOTICE
        assert tickets.deleted == ["T-7"]
        # The next message sees what the tool returned.
        await say(parts, "did it work?")
        assert "Ticket T-7 deleted." in json.dumps(model.requests[-1].messages)
    finally:
        await parts.close()


async def test_the_tool_line_shows_when_an_approved_tool_runs(
    model: FakeOpenAI, tmp_path: Path
) -> None:
    tickets = Tickets()
    parts, _ = await start(model, tmp_path / "m.sqlite3", tickets)
    try:
        asking = Recorder()
        reply = await say(parts, "please delete T-7", sink=asking)
        assert asking.tools == []  # nothing runs before the click
        assert reply.approval is not None
        running = Recorder()
        await parts.core.decide(
            reply.approval.approval_id,
            Decision.APPROVE,
            user_id="id-Ann",
            user_name="Ann",
            sink=running,
        )
        assert running.tools == ["delete_ticket"]
    finally:
        await parts.close()


async def test_running_tools_are_shown_and_stored_with_the_turn(
    model: FakeOpenAI, tmp_path: Path
) -> None:
    tickets = Tickets()
    parts, _ = await start(model, tmp_path / "m.sqlite3", tickets)
    try:
        sink = Recorder()
        reply = await say(parts, "please look up T-3", sink=sink)
        assert reply.text == "Tool said: Ticket T-3: open, assigned to Dana."
        assert sink.tools == ["lookup_ticket"]
        assert tickets.looked_up == ["T-3"]
        history = await say(parts, "/history")
        assert "lookup_ticket" in history.text
    finally:
        await parts.close()


async def _settled(parts: BotParts) -> None:
    """Wait for the core's background prompt updates."""
    await parts.core.idle()


async def test_on_postgresql_another_worker_takes_the_click(
    model: FakeOpenAI, tmp_path: Path, postgres: Any
) -> None:
    tickets = Tickets()
    one, _ = await start(model, tmp_path / "unused.sqlite3", tickets, database_url=postgres.url)
    two, _ = await start(model, tmp_path / "unused.sqlite3", tickets, database_url=postgres.url)
    try:
        request = await paused(one)
        first, second = await asyncio.gather(
            two.core.decide(
                request.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
            ),
            one.core.decide(
                request.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
            ),
        )
        # Two clicks on two workers at once: the tool runs once, the turn is stored once.
        assert sorted([first.kind.value, second.kind.value]) == ["answer", "notice"]
        assert tickets.deleted == ["T-7"]
        assert len(await stored(one)) == 4
    finally:
        await one.close()
        await two.close()
