"""The console adapter and the CLI, driven as a user would: a real process, stdin and stdout;
and tools and approvals at the console, in this process and through a real MCP server."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from agents import FunctionTool, function_tool

from adapters.console import APPROVE_PROMPT, PROMPT
from bot.core import Core
from tests.fakes.openai_server import FakeOpenAI, Fault, ToolCall, message_text, reply_from_history
from tests.support.console import Console, Typist, bot_env, run_cli, start_console
from tests.support.discord import eventually
from tests.support.mcp_server import calls, config_entry
from tests.support.parts import BotParts, make_config


@pytest.fixture
async def console(fake_openai: FakeOpenAI, tmp_path: Path) -> AsyncIterator[Console]:
    env = bot_env(fake_openai, tmp_path / "memory.sqlite3")
    running = await start_console(tmp_path, env, "console", "--thread", "a", "--name", "Tess")
    yield running
    if running.process.returncode is None:
        running.process.kill()
        await running.process.wait()


async def test_chat_streams_remembers_and_obeys_commands(console: Console) -> None:
    first = await console.say("my favourite colour is green")
    assert first == "bot> You said: [Tess] my favourite colour is green. Before that: nothing."
    second = await console.say("what did I say?")
    assert "Before that: [Tess] my favourite colour is green." in second

    history = await console.say("/history")
    assert "Tess: my favourite colour is green" in history
    assert "Tess: what did I say?" in history

    undone = await console.say("/undo")
    assert "Undone" in undone
    assert "what did I say?" in undone
    forgot = await console.say("/forget")
    assert "forgot 2 messages" in forgot
    assert "nothing to forget" in await console.say("/forget")
    assert "/history" in await console.say("/help")

    code, stderr = await console.quit()
    assert code == 0
    assert "Traceback" not in stderr


async def test_model_failure_is_a_friendly_line(console: Console, fake_openai: FakeOpenAI) -> None:
    from tests.fakes.openai_server import Fault

    fake_openai.fail_next(Fault(status=500))
    answer = await console.say("hello?")
    assert answer == "bot> (!) The AI model had a problem on its side. Please try again shortly."
    assert "Before that: nothing" in await console.say("hello again")
    code, stderr = await console.quit()
    assert code == 0
    assert "Traceback" not in stderr
    assert "sk-test-console-key" not in stderr


async def test_threads_are_separate_and_survive_restarts(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    env = bot_env(fake_openai, tmp_path / "memory.sqlite3")
    first = await start_console(tmp_path, env, "console", "--thread", "work", "--name", "Tess")
    await first.say("the launch code is 1234")
    assert (await first.quit())[0] == 0

    again = await start_console(tmp_path, env, "console", "--thread", "work", "--name", "Tess")
    assert "the launch code is 1234" in await again.say("what is the code?")
    assert (await again.quit())[0] == 0

    other = await start_console(tmp_path, env, "console", "--thread", "home", "--name", "Tess")
    assert "Before that: nothing." in await other.say("what is the code?")
    assert (await other.quit())[0] == 0

    sessions = await run_cli(tmp_path, env, "sessions")
    assert sessions.returncode == 0
    assert "console:work" in sessions.stdout
    assert "console:home" in sessions.stdout
    history = await run_cli(tmp_path, env, "history", "console:work")
    assert "Tess: the launch code is 1234" in history.stdout


async def test_sigterm_stops_the_console_cleanly(console: Console) -> None:
    await console.say("hello")
    console.process.send_signal(signal.SIGTERM)
    code, stderr = await console.quit()
    assert code == 0
    assert "Traceback" not in stderr


async def test_missing_api_key_is_one_clear_line(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    env = bot_env(fake_openai, tmp_path / "m.sqlite3")
    del env["OPENAI_API_KEY"], env["OPENAI_BASE_URL"]
    result = await run_cli(tmp_path, env, "console")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: OPENAI_API_KEY is not set: put it in .env (see .env.example) or set "
        "OPENAI_BASE_URL to an OpenAI-compatible server that needs no key."
    ]


async def test_bad_setting_is_one_clear_line(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    env = bot_env(fake_openai, tmp_path / "m.sqlite3", BOT_CONTEXT_TOKENS="lots")
    result = await run_cli(tmp_path, env, "console")
    assert result.returncode == 2
    assert "BOT_CONTEXT_TOKENS must be a whole number" in result.stderr
    assert "Traceback" not in result.stderr


async def test_settings_come_from_the_env_file(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    env = bot_env(fake_openai, tmp_path / "unused.sqlite3")
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "BOT_DB_PATH"):
        del env[key]
    (tmp_path / ".env").write_text(
        f"OPENAI_API_KEY=sk-from-dotenv\nOPENAI_BASE_URL={fake_openai.base_url}\n"
        f"BOT_DB_PATH={tmp_path / 'from-dotenv.sqlite3'}\n"
    )
    console = await start_console(tmp_path, env, "console", "--name", "Tess")
    assert (await console.say("hi")).startswith("bot> You said: [Tess] hi.")
    assert (await console.quit())[0] == 0
    assert (tmp_path / "from-dotenv.sqlite3").exists()
    sessions = await run_cli(tmp_path, env, "sessions")
    assert "console:default" in sessions.stdout


async def test_admin_commands_on_a_missing_file(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    env = bot_env(fake_openai, tmp_path / "absent.sqlite3")
    result = await run_cli(tmp_path, env, "sessions")
    assert result.returncode == 2
    assert "No memory file" in result.stderr
    assert not (tmp_path / "absent.sqlite3").exists()  # read-only tools create nothing


async def test_sigterm_mid_turn_finishes_the_turn_then_exits(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    env = bot_env(fake_openai, tmp_path / "memory.sqlite3")
    console = await start_console(tmp_path, env, "console", "--thread", "t", "--name", "Tess")
    fake_openai.latency = 1.5
    assert console.process.stdin is not None
    console.process.stdin.write(b"a slow question\n")
    await console.process.stdin.drain()
    await asyncio.wait_for(fake_openai.request_seen.wait(), 10)
    console.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(15):  # bounded: the turn's own time, not the 30 s grace
        code, stderr = await console.quit()
    assert code == 0
    assert "Traceback" not in stderr
    assert "You said: [Tess] a slow question" in console.transcript
    history = await run_cli(tmp_path, env, "history", "console:t")
    assert "Tess: a slow question" in history.stdout
    assert "You said" in history.stdout


# ----- Tools and approvals, with the adapter in this process (the core in hand) ----------------


@dataclass
class Tickets:
    """A tool that needs approval and one that does not, recording what actually ran."""

    ran: list[tuple[str, str]] = field(default_factory=list)

    def tools(self) -> list[FunctionTool]:
        @function_tool(needs_approval=True)
        async def delete_ticket(ticket: str) -> str:
            """Delete a ticket for good.

            Args:
                ticket: The ticket's ID.
            """
            self.ran.append(("delete_ticket", ticket))
            return f"Ticket {ticket} deleted."

        @function_tool
        async def lookup_ticket(ticket: str) -> str:
            """Look a ticket up.

            Args:
                ticket: The ticket's ID.
            """
            self.ran.append(("lookup_ticket", ticket))
            return f"Ticket {ticket}: open, assigned to Dana, priority high"

        return [delete_ticket, lookup_ticket]


TICKET = re.compile(r"\bT-\d+\b")


def ticket_model(messages: list[dict[str, Any]]) -> str | ToolCall | Fault:
    """Calls `lookup_ticket` or `delete_ticket` once per ticket the newest message names, one
    after the other, then answers with what the tools said."""
    asked = next(i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user")
    text = message_text(messages[asked])
    outputs = [message_text(m) for m in messages[asked + 1 :] if m.get("role") == "tool"]
    tool = "delete_ticket" if "delete" in text else "lookup_ticket" if "look up" in text else None
    wanted = TICKET.findall(text) if tool else []
    if len(outputs) < len(wanted):
        return ToolCall(tool or "", {"ticket": wanted[len(outputs)]})
    if outputs:
        return "Tools said: " + " | ".join(outputs)
    return reply_from_history(messages)


@pytest.fixture
async def tickets(fake_openai: FakeOpenAI, tmp_path: Path) -> AsyncIterator[tuple[Tickets, Core]]:
    fake_openai.responder = ticket_model
    ran = Tickets()
    parts = BotParts(make_config(fake_openai, tmp_path / "m.sqlite3"), tools=ran.tools())
    await parts.start()
    yield ran, parts.core
    await parts.close()


async def test_a_tool_in_use_shows_a_line(tickets: tuple[Tickets, Core]) -> None:
    ran, core = tickets
    async with Typist(core) as console:
        shown = await console.say("look up T-1 please")
    assert shown.splitlines() == [
        "(using lookup_ticket…)",
        "bot> Tools said: Ticket T-1: open, assigned to Dana, priority high",
    ]
    assert ran.ran == [("lookup_ticket", "T-1")]


async def test_approving_at_the_prompt_runs_the_tool(tickets: tuple[Tickets, Core]) -> None:
    ran, core = tickets
    async with Typist(core) as console:
        asked = await console.say("please delete T-7", until=APPROVE_PROMPT)
        assert "delete_ticket" in asked
        assert "T-7" in asked
        assert ran.ran == []  # nothing runs before the answer
        answer = await console.say("y")
        assert answer.splitlines()[-1] == "bot> Tools said: Ticket T-7 deleted."
        assert ran.ran == [("delete_ticket", "T-7")]
        history = await console.say("/history")
    assert "Tess: please delete T-7" in history
    assert "delete_ticket" in history


async def test_the_tool_line_shows_when_an_approved_tool_runs(
    tickets: tuple[Tickets, Core],
) -> None:
    _, core = tickets
    async with Typist(core) as console:
        asked = await console.say("please delete T-7", until=APPROVE_PROMPT)
        assert "(using" not in asked  # asking is not using
        answer = await console.say("y")
    assert answer.splitlines() == [
        "(using delete_ticket…)",
        "bot> Tools said: Ticket T-7 deleted.",
    ]


async def test_rejecting_at_the_prompt_runs_nothing(tickets: tuple[Tickets, Core]) -> None:
    ran, core = tickets
    async with Typist(core) as console:
        await console.say("please delete T-7", until=APPROVE_PROMPT)
        answer = await console.say("no thanks")  # anything but y/yes is a no
        assert answer.startswith("bot> Tools said:")
        assert "rejected" in answer
    assert ran.ran == []


async def test_a_failed_rejection_asks_again(
    tickets: tuple[Tickets, Core], fake_openai: FakeOpenAI
) -> None:
    ran, core = tickets
    async with Typist(core) as console:
        await console.say("please delete T-7", until=APPROVE_PROMPT)
        fake_openai.fail_next(Fault(status=500))
        failed = await console.say("n", until=APPROVE_PROMPT)  # still pending: asked again
        assert failed.splitlines()[-1].startswith("bot> (!) The AI model had a problem")
        answer = await console.say("y")
        assert answer.splitlines()[-1] == "bot> Tools said: Ticket T-7 deleted."
    assert ran.ran == [("delete_ticket", "T-7")]


async def test_a_failed_answer_after_an_approved_tool_does_not_run_it_twice(
    tickets: tuple[Tickets, Core], fake_openai: FakeOpenAI
) -> None:
    ran, core = tickets
    async with Typist(core) as console:
        await console.say("please delete T-7", until=APPROVE_PROMPT)
        fake_openai.fail_next(Fault(status=500))
        failed = await console.say("y")  # settled: not asked again
        assert "The tool did run" in failed
        after = await console.say("did it work?")
        assert "did it work?" in after
    assert ran.ran == [("delete_ticket", "T-7")]


async def test_each_call_is_asked_in_turn(tickets: tuple[Tickets, Core]) -> None:
    ran, core = tickets
    async with Typist(core) as console:
        first = await console.say("delete T-1 and T-2", until=APPROVE_PROMPT)
        assert "T-1" in first
        second = await console.say("yes", until=APPROVE_PROMPT)
        assert "T-2" in second
        assert "T-1" not in second
        answer = await console.say("n")
        assert answer.startswith("bot> Tools said: Ticket T-1 deleted. | ")
    assert ran.ran == [("delete_ticket", "T-1")]


async def test_an_expired_prompt_says_so_and_gives_the_prompt_back(
    tickets: tuple[Tickets, Core],
) -> None:
    ran, core = tickets
    async with Typist(core) as console:
        await console.say("please delete T-7", until=APPROVE_PROMPT)
        assert await core.expire_approvals(now=datetime.now(UTC) + timedelta(days=1)) == 1
        ended = (await console.read_until(PROMPT)).removesuffix(PROMPT).strip()
        assert ended.splitlines()[0] == "(that request expired)"
        assert ended.splitlines()[-1].startswith("bot> Tools said:")
        # The question is gone: the next line is a new message, not an answer to it.
        assert "Before that: [Tess] please delete T-7" in await console.say("y")
    assert ran.ran == []


# ----- The whole bot in a child process, with a real MCP server from BOT_MCP_CONFIG --------


async def test_an_mcp_tool_needing_approval_from_the_config(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.responder = ticket_model
    log = tmp_path / "calls.jsonl"
    config = tmp_path / "mcp.json"
    entry = config_entry(log, require_approval=["delete_ticket"], allowed_tools=ALLOWED)
    config.write_text(json.dumps({"mcpServers": {"tickets": entry}}))
    env = bot_env(fake_openai, tmp_path / "m.sqlite3", BOT_MCP_CONFIG=str(config))
    console = await start_console(tmp_path, env, "console", "--name", "Tess")
    try:
        looked = await console.say("look up T-1")
        assert looked.splitlines() == [
            "(using lookup_ticket…)",
            "bot> Tools said: Ticket T-1: open, assigned to Dana, priority high",
        ]
        asked = await console.say("delete T-2", until=APPROVE_PROMPT)
        assert "delete_ticket" in asked
        assert [c["tool"] for c in calls(log)] == ["lookup_ticket"]
        answer = await console.say("y")
        assert answer.splitlines()[-1] == "bot> Tools said: Ticket T-2 deleted."
        assert [c["tool"] for c in calls(log)] == ["lookup_ticket", "delete_ticket"]
        # The model is only offered what the allow-list names.
        offered = {tool["function"]["name"] for tool in fake_openai.requests[-1].body["tools"]}
        assert "secret_admin" not in offered
        assert {"lookup_ticket", "delete_ticket"} <= offered
        code, stderr = await console.quit()
    finally:
        if console.process.returncode is None:
            console.process.kill()
            await console.process.wait()
    assert code == 0
    assert "Traceback" not in stderr


@pytest.mark.parametrize("scope", ["thread", "user"])
async def test_a_prompt_left_at_quit_is_asked_again_after_a_restart(
    fake_openai: FakeOpenAI, tmp_path: Path, scope: str
) -> None:
    # Under BOT_MEMORY_SCOPE=user the approval is kept under the person's memory, not the
    # console thread's key: the restarted console must ask for it where it was kept.
    fake_openai.responder = ticket_model
    log = tmp_path / "calls.jsonl"
    config = tmp_path / "mcp.json"
    entry = config_entry(log, require_approval="always", allowed_tools=ALLOWED)
    config.write_text(json.dumps({"mcpServers": {"tickets": entry}}))
    env = bot_env(
        fake_openai, tmp_path / "m.sqlite3", BOT_MCP_CONFIG=str(config), BOT_MEMORY_SCOPE=scope
    )
    first = await start_console(tmp_path, env, "console", "--name", "Tess")
    assert "delete_ticket" in await first.say("delete T-3", until=APPROVE_PROMPT)
    code, stderr = await first.quit()  # Ctrl-D at the question: it stays pending
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert calls(log) == []  # listing tools is not a call; nothing ran

    again = await start_console(tmp_path, env, "console", "--name", "Tess", until=APPROVE_PROMPT)
    answer = await again.say("y")
    assert answer.splitlines()[-1].startswith("bot> Tools said: Ticket T-3")
    assert (await again.quit())[0] == 0
    assert [call["tool"] for call in calls(log)] == ["delete_ticket"]


ALLOWED = ["lookup_ticket", "delete_ticket"]


def waiting_model(messages: list[dict[str, Any]]) -> str | ToolCall | Fault:
    """Calls `slow` for a minute when asked to wait; otherwise answers from what it was told."""
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return f"The tool said: {message_text(last)}"
    if last.get("role") == "user" and "wait" in message_text(last):
        return ToolCall("slow", {"seconds": 60})
    return reply_from_history(messages)


async def test_an_approved_call_cut_off_by_a_crash_is_never_asked_again(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.responder = waiting_model
    log = tmp_path / "calls.jsonl"
    config = tmp_path / "mcp.json"
    entry = config_entry(log, require_approval="always", allowed_tools=["slow"])
    config.write_text(json.dumps({"mcpServers": {"tickets": entry}}))
    env = bot_env(fake_openai, tmp_path / "m.sqlite3", BOT_MCP_CONFIG=str(config))
    first = await start_console(tmp_path, env, "console", "--name", "Tess")
    assert "slow" in await first.say("wait a minute", until=APPROVE_PROMPT)
    assert first.process.stdin is not None
    first.process.stdin.write(b"y\n")
    await first.process.stdin.drain()
    # The tool has started once its server logged the call (it logs before acting).
    await eventually(lambda: calls(log), what="the call to slow")
    first.process.kill()  # dies inside the call, as in a power cut
    await first.process.wait()

    again = await start_console(tmp_path, env, "console", "--name", "Tess")
    assert APPROVE_PROMPT not in again.transcript  # no second "yes" can run it twice
    assert "I stopped while slow was running, so it may or may not have completed" in (
        again.transcript
    )
    await again.say("what happened?")
    told = [message_text(m) for m in fake_openai.requests[-1].messages if m["role"] == "tool"]
    assert told == [
        "The bot stopped while this call was running, so it may or may not have completed."
    ]
    assert (await again.quit())[0] == 0
    assert [call["tool"] for call in calls(log)] == ["slow"]
