"""Tools from configuration: a real MCP server (stdio and streamable HTTP) and entry-point plugins.

The MCP server is `tests/support/mcp_server.py`, run as a child process the way the bot runs any
configured server; it records each call it receives, so a test can tell a tool that ran from one
that did not.
"""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from agents import function_tool

from bot.config import Config
from bot.messages import Decision, IncomingMessage, Reply, ReplyKind, Surface
from bot.settings import ConfigError
from bot.tools import Toolbox, open_toolbox, read_mcp_config, tool_names
from tests.fakes.openai_server import FakeOpenAI, Fault, ToolCall, message_text
from tests.support.mcp_server import calls, config_entry, serving_http
from tests.support.parts import BotParts, make_config
from tests.support.sinks import Recorder

CHAT = Surface(max_chars=2000)
THREAD = "console:tools"


def calling_model(messages: list[dict[str, Any]]) -> str | ToolCall | Fault:
    """`call <tool> <json arguments>` makes the model call that tool; then it reports back."""
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return f"The tool said: {message_text(last)}"
    text = message_text(last) if last.get("role") == "user" else ""
    if "call " in text:
        name, _, arguments = text.split("call ", 1)[1].partition(" ")
        return ToolCall(name, json.loads(arguments or "{}"))
    return "Nothing to do."


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(calling_model) as fake:
        yield fake


def write_config(path: Path, servers: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}), encoding="utf-8")
    return path


async def say(parts: BotParts, text: str, sink: Any = None) -> Reply:
    message = IncomingMessage("console", THREAD, "id-Ann", "Ann", text)
    return await parts.core.handle(message, CHAT, sink)


class Bot:
    """A core whose tools come from `open_toolbox`, as `serve()` builds it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.parts: BotParts
        self.toolbox: Toolbox
        self._box: Any = None

    async def __aenter__(self) -> Bot:
        self._box = open_toolbox(self.config, reserved=["search_thread"])
        self.toolbox = await self._box.__aenter__()
        self.parts = await BotParts(self.config, tools=self.toolbox.tools).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.parts.close()
        await self._box.__aexit__(None, None, None)

    async def stored(self) -> list[dict[str, Any]]:
        return [s.item for s in await self.parts.store.history(THREAD, limit=100)]


async def test_an_mcp_tool_call_reaches_the_model_and_is_stored_as_one_turn(
    model: FakeOpenAI, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    mcp = write_config(tmp_path / "mcp.json", {"tickets": config_entry(log)})
    config = make_config(model, tmp_path / "m.sqlite3", mcp_config=str(mcp))
    async with Bot(config) as bot:
        sink = Recorder()
        reply = await say(bot.parts, 'call lookup_ticket {"ticket": "T-1"}', sink)
        assert reply.kind is ReplyKind.ANSWER
        assert reply.text == "The tool said: Ticket T-1: open, assigned to Dana, priority high"
        assert sink.tools == ["lookup_ticket"]
        assert [c["tool"] for c in calls(log)] == ["lookup_ticket"]
        # The tool's result went back to the model with its call.
        sent = model.requests[-1].messages
        assert [m["role"] for m in sent[-2:]] == ["assistant", "tool"]
        kinds = [i.get("role") or i.get("type") for i in await bot.stored()]
        assert kinds == ["user", "function_call", "function_call_output", "assistant"]
        history = await say(bot.parts, "/history")
        assert "lookup_ticket" in history.text
        undone = await say(bot.parts, "/undo")
        assert undone.kind is ReplyKind.COMMAND
        assert await bot.stored() == []


async def test_a_slow_tool_times_out_into_a_result_the_model_reads(
    model: FakeOpenAI, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    mcp = write_config(tmp_path / "mcp.json", {"tickets": config_entry(log)})
    config = make_config(model, tmp_path / "m.sqlite3", mcp_config=str(mcp), tool_timeout=0.5)
    async with Bot(config) as bot:
        reply = await say(bot.parts, 'call slow {"seconds": 5}')
        assert reply.kind is ReplyKind.ANSWER
        assert "timed out after 0.5 seconds" in reply.text
        # The server is still usable after the abandoned call.
        again = await say(bot.parts, 'call lookup_ticket {"ticket": "T-2"}')
        assert "closed, assigned to Lee" in again.text


async def test_a_crashing_server_gives_an_error_result_then_comes_back(
    model: FakeOpenAI, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    mcp = write_config(tmp_path / "mcp.json", {"tickets": config_entry(log)})
    config = make_config(model, tmp_path / "m.sqlite3", mcp_config=str(mcp))
    async with Bot(config) as bot:
        reply = await say(bot.parts, "call crash {}")
        assert reply.kind is ReplyKind.ANSWER
        assert reply.text.startswith("The tool said: An error occurred")
        assert len(await bot.stored()) == 4
        again = await say(bot.parts, 'call lookup_ticket {"ticket": "T-1"}')
        assert "open, assigned to Dana" in again.text
        first, second = calls(log)
        assert (first["tool"], second["tool"]) == ("crash", "lookup_ticket")
        assert first["pid"] != second["pid"]  # a new server process answered


async def test_the_allow_list_and_approval_list_apply(model: FakeOpenAI, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    entry = config_entry(
        log,
        allowed_tools=["lookup_ticket", "delete_ticket"],
        require_approval=["delete_ticket"],
    )
    mcp = write_config(tmp_path / "mcp.json", {"tickets": entry})
    config = make_config(model, tmp_path / "m.sqlite3", mcp_config=str(mcp))
    async with Bot(config) as bot:
        assert tool_names(bot.toolbox.tools) == ["lookup_ticket", "delete_ticket"]
        offered = [t["function"]["name"] for t in model_tools(bot, model)]
        assert "secret_admin" not in offered
        # A model that calls the left-out tool anyway gets nothing run, and is told so.
        refused = await say(bot.parts, "call secret_admin {}")
        assert refused.kind is ReplyKind.ANSWER
        assert refused.text == (
            "The tool said: The tool secret_admin is not available here. Answer without it."
        )
        assert calls(log) == []
        kinds = [i.get("role") or i.get("type") for i in await bot.stored()]
        assert kinds == ["user", "function_call", "function_call_output", "assistant"]
        paused = await say(bot.parts, 'call delete_ticket {"ticket": "T-2"}')
        assert paused.kind is ReplyKind.APPROVAL
        assert calls(log) == []
        assert paused.approval is not None
        done = await bot.parts.core.decide(
            paused.approval.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
        )
        assert done.text == "The tool said: Ticket T-2 deleted."
        assert [c["tool"] for c in calls(log)] == ["delete_ticket"]


def model_tools(bot: Bot, model: FakeOpenAI) -> list[dict[str, Any]]:
    return [t for t in model.requests[0].body.get("tools", [])] if model.requests else []


async def test_a_server_that_will_not_start_is_skipped(
    model: FakeOpenAI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "calls.jsonl"
    servers = {
        "broken": {"command": str(tmp_path / "no-such-program")},
        "tickets": config_entry(log, allowed_tools=["lookup_ticket"]),
    }
    config = make_config(
        model, tmp_path / "m.sqlite3", mcp_config=str(write_config(tmp_path / "m.json", servers))
    )
    with caplog.at_level(logging.WARNING, logger="bot.tools"):
        async with Bot(config) as bot:
            assert tool_names(bot.toolbox.tools) == ["lookup_ticket"]
            reply = await say(bot.parts, 'call lookup_ticket {"ticket": "T-1"}')
            assert "open" in reply.text
    skipped = [r.getMessage() for r in caplog.records if "did not start" in r.getMessage()]
    assert len(skipped) == 1
    assert skipped[0].startswith("MCP server broken (stdio)")
    assert "\n" not in skipped[0]


async def test_a_streamable_http_server_works_the_same(model: FakeOpenAI, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    async with serving_http(log) as url:
        servers = {"remote": {"url": url, "headers": {"X-Test": "${TEST_HEADER}"}}}
        config = make_config(
            model,
            tmp_path / "m.sqlite3",
            mcp_config=str(write_config(tmp_path / "mcp.json", servers)),
            environment={"TEST_HEADER": "yes"},
        )
        async with Bot(config) as bot:
            reply = await say(bot.parts, 'call lookup_ticket {"ticket": "T-1"}')
            assert reply.text.endswith("open, assigned to Dana, priority high")
    assert [c["tool"] for c in calls(log)] == ["lookup_ticket"]


PLUGIN = textwrap.dedent(
    '''
    from agents import function_tool

    @function_tool
    def roll_dice(sides: int) -> str:
        """Roll a die.

        Args:
            sides: How many sides it has.
        """
        return f"rolled {sides} (a loaded die)"

    @function_tool
    async def nap(seconds: float) -> str:
        """Wait a while."""
        import asyncio
        await asyncio.sleep(seconds)
        return "rested"

    def tools():
        return [roll_dice, nap]
    '''
)


def install_plugin(root: Path, name: str, module: str, source: str, target: str) -> None:
    """What `pip install` leaves behind for a package with a `memorybot.tools` entry point."""
    (root / f"{module}.py").write_text(source, encoding="utf-8")
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[memorybot.tools]\n{name} = {target}\n")


async def test_plugins_add_tools_through_entry_points(
    model: FakeOpenAI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site, "dice", "memorybot_test_dice", PLUGIN, "memorybot_test_dice:tools")
    install_plugin(
        site,
        "broken",
        "memorybot_test_broken",
        "raise ImportError('oops')\n",
        "memorybot_test_broken:tools",
    )
    monkeypatch.syspath_prepend(str(site))
    config = make_config(model, tmp_path / "m.sqlite3", tool_timeout=0.3)
    with caplog.at_level(logging.WARNING, logger="bot.tools"):
        async with Bot(config) as bot:
            assert tool_names(bot.toolbox.tools) == ["roll_dice", "nap"]
            reply = await say(bot.parts, 'call roll_dice {"sides": 20}')
            assert reply.text == "The tool said: rolled 20 (a loaded die)"
            slow = await say(bot.parts, 'call nap {"seconds": 3}')
            assert "timed out after 0.3 seconds" in slow.text
    assert any(
        "broken" in r.getMessage() and "did not load" in r.getMessage() for r in caplog.records
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[]", '"mcpServers"'),
        ("{not json", "not readable JSON"),
        ('{"mcpServers": {"a": {}}}', 'either "command"'),
        ('{"mcpServers": {"a": {"command": "x", "url": "http://h"}}}', 'either "command"'),
        (
            '{"mcpServers": {"a": {"command": "x", "require_approval": "maybe"}}}',
            "require_approval",
        ),
        ('{"mcpServers": {"a": {"command": "x", "env": {"K": "${UNSET_VAR}"}}}}', "UNSET_VAR"),
        ('{"mcpServers": {"a": {"command": "x", "allowed_tools": "all"}}}', "allowed_tools"),
    ],
)
def test_a_bad_mcp_config_is_one_clear_line(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        read_mcp_config(path, {})
    assert problem in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_example_config_reads(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "mcp.json"
    specs = read_mcp_config(example, {"TICKETS_TOKEN": "t"})
    assert specs, "examples/mcp.json names at least one server"


async def test_tool_calls_do_not_block_other_threads(model: FakeOpenAI, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    mcp = write_config(tmp_path / "mcp.json", {"tickets": config_entry(log)})
    config = make_config(model, tmp_path / "m.sqlite3", mcp_config=str(mcp))
    async with Bot(config) as bot:
        slow = asyncio.create_task(say(bot.parts, 'call slow {"seconds": 1.5}'))
        await asyncio.sleep(0.2)
        message = IncomingMessage("console", "console:other", "id-Bob", "Bob", "hello")
        quick = await asyncio.wait_for(bot.parts.core.handle(message, CHAT), 1.0)
        assert quick.text == "Nothing to do."
        assert "done" in (await slow).text


async def test_a_long_thread_of_tool_turns_never_splits_a_call_from_its_result(
    tmp_path: Path,
) -> None:
    """A small budget forces the window to cut the thread on every turn; the fake refuses any
    request holding a tool result without its call, as OpenAI does, so every turn answering is
    the proof."""

    @function_tool
    def lookup_ticket(ticket: str) -> str:
        """Look a ticket up.

        Args:
            ticket: The ticket's ID.
        """
        return f"Ticket {ticket}: " + "details " * 60

    async with FakeOpenAI(calling_model) as fake:
        config = make_config(
            fake, tmp_path / "m.sqlite3", context_tokens=4_000, max_output_tokens=500
        )
        parts = await BotParts(config, tools=[lookup_ticket]).start()
        try:
            for turn in range(40):
                reply = await say(parts, f'call lookup_ticket {{"ticket": "T-{turn}"}}')
                assert reply.kind is ReplyKind.ANSWER, reply
                await parts.core.idle()
            assert len(await parts.store.history(THREAD, limit=1000)) == 160
            sent = fake.requests[-1].messages
            assert 'T-0"' not in json.dumps(sent)  # the window did move on
        finally:
            await parts.close()


async def test_the_fake_model_refuses_a_tool_result_without_its_call() -> None:
    """What makes the test above a proof: OpenAI's own refusal, reproduced."""
    async with FakeOpenAI(calling_model) as fake:
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
        try:
            with pytest.raises(openai.BadRequestError, match="must be a response to a preceeding"):
                await client.chat.completions.create(
                    model="fake-model",
                    messages=[
                        {"role": "user", "content": "hi"},
                        {"role": "tool", "tool_call_id": "call_9", "content": "42"},
                    ],
                )
        finally:
            await client.close()
