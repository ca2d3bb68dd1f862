"""kill -9 while 200 conversations write: nothing delivered is lost, nothing is half-stored;
kill -9 inside an approved tool call: the next start never asks again."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from agents import function_tool

from bot.messages import ApprovalEnding, Decision, IncomingMessage, ReplyKind, Surface
from tests.crash_driver import APPROVED_PLATFORM, APPROVED_THREAD, ASKER
from tests.fakes.openai_server import FakeOpenAI, ToolCall, message_text, reply_from_history
from tests.support.parts import BotParts, make_config
from tests.support.sinks import Outlet
from tests.support.stores import memory_at  # noqa: F401 (a fixture)

CONVERSATIONS = 200
ROOT = Path(__file__).resolve().parent.parent


async def test_sigkill_mid_write_loses_no_delivered_turn(tmp_path: Path) -> None:
    db = tmp_path / "crash.sqlite3"
    async with FakeOpenAI(latency=0.005) as fake:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.crash_driver",
            str(db),
            fake.base_url,
            str(CONVERSATIONS),
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        assert process.stdout is not None
        delivered: list[tuple[str, int]] = []
        async with asyncio.timeout(90):
            while len(delivered) < 3 * CONVERSATIONS:
                line = (await process.stdout.readline()).decode()
                assert line, "the bot process ended early"
                _, session, number = line.split()
                delivered.append((session, int(number)))
        process.send_signal(signal.SIGKILL)
        rest = (await process.stdout.read()).decode()
        await process.wait()
    for line in rest.splitlines():  # printed before the kill, so they reached "the platform"
        if line.count(" ") == 2:
            _, session, number = line.split()
            delivered.append((session, int(number)))
    assert process.returncode == -signal.SIGKILL

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = conn.execute(
            "SELECT session_id, message_data FROM agent_messages ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    threads: dict[str, list[dict[str, object]]] = defaultdict(list)
    for session, data in rows:
        threads[session].append(json.loads(data))
    for thread, items in threads.items():
        roles = [item.get("role") for item in items]
        # Whole turns only, in order: user, assistant, user, assistant...
        assert roles == ["user", "assistant"] * (len(items) // 2), thread
        said = [item["content"] for item in items[::2]]
        assert said == [f"[Ann] message {n}" for n in range(len(said))], thread
    for session, turn in delivered:
        assert len(threads[session]) >= 2 * (turn + 1), f"{session} lost turn {turn}"


INTERRUPTED = (
    "I stopped while delete_ticket was running, so it may or may not have completed. "
    "Please check before asking me to run it again."
)


def deleting_model(messages: list[dict[str, Any]]) -> str | ToolCall:
    """Deletes a ticket when asked to; otherwise says what it read last."""
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return f"Tool said: {message_text(last)}"
    text = message_text(last) if last.get("role") == "user" else ""
    if "delete T-" in text:
        return ToolCall("delete_ticket", {"ticket": text.split("delete ")[1].split()[0]})
    return reply_from_history(messages)


async def killed_inside_the_call(memory: str, fake: FakeOpenAI) -> str:
    """Run `tests.crash_driver approved` until it is inside the approved call, then SIGKILL
    it; returns the approval's ID."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.crash_driver",
        "approved",
        memory,
        fake.base_url,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            prompt = (await process.stdout.readline()).decode().split()
            running = (await process.stdout.readline()).decode()
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert prompt[:1] == ["PROMPT"], prompt
    assert running == "RUNNING T-7\n", "the bot process ended before the call"
    return prompt[1]


@pytest.mark.parametrize("told_by", ["sweep", "message"])
async def test_sigkill_inside_an_approved_call_is_told_and_never_asked_again(
    memory_at: str,  # noqa: F811 (the fixture)
    told_by: str,
) -> None:
    deleted: list[str] = []

    @function_tool(needs_approval=True)
    async def delete_ticket(ticket: str) -> str:
        """Delete a ticket for good.

        Args:
            ticket: The ticket's ID.
        """
        deleted.append(ticket)
        return f"Ticket {ticket} deleted."

    async with FakeOpenAI(deleting_model) as fake:
        approval_id = await killed_inside_the_call(memory_at, fake)
        url = "://" in memory_at
        config = make_config(
            fake, "unused.sqlite3" if url else memory_at, database_url=memory_at if url else None
        )
        parts = await BotParts(config, tools=[delete_ticket]).start()
        outlet = Outlet()
        parts.core.attach_outlet(APPROVED_PLATFORM, outlet)
        user_id, name = ASKER
        try:
            if told_by == "sweep":  # the first sweep after the start
                assert await parts.core.expire_approvals() == 1
            else:  # the person writes before the first sweep
                message = IncomingMessage(
                    APPROVED_PLATFORM, APPROVED_THREAD, user_id, name, "did it work?"
                )
                reply = await parts.core.handle(message, Surface())
                assert reply.kind is ReplyKind.ANSWER, reply
            await parts.core.idle()
            # The person is told, under the prompt, which loses its buttons.
            assert [(a, at, ending) for a, at, ending, _ in outlet.ended] == [
                (approval_id, "prompt-1", ApprovalEnding.INTERRUPTED)
            ]
            notice = outlet.ended[0][3]
            assert notice is not None
            assert notice.text == INTERRUPTED
            # Memory holds the call as interrupted, so the model reads the same.
            items = await parts.store.read_items(APPROVED_THREAD)
            kinds = [item.get("role") or item.get("type") for item in items]
            said = ["user", "assistant"] if told_by == "message" else []
            assert kinds == ["user", "function_call", "function_call_output", *said]
            assert "may or may not have completed" in str(items[2]["output"])
            if told_by == "message":
                assert "may or may not have completed" in str(fake.requests[-1].messages)
            # Nothing waits any more: a click on the old prompt runs nothing.
            again = await parts.core.decide(
                approval_id, Decision.APPROVE, user_id=user_id, user_name=name
            )
            assert again.kind is ReplyKind.NOTICE
            assert await parts.core.expire_approvals() == 0
            assert deleted == []
        finally:
            await parts.close()
