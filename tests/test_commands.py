"""The command parser: what counts as a command and what is chat."""

from __future__ import annotations

import pytest

from bot.app import build_planner
from bot.commands import default_commands
from bot.config import Config
from bot.storage import SQLiteStore


@pytest.fixture
async def registry():
    store = await SQLiteStore.open()
    yield default_commands(store, build_planner(Config(), store), "bot")
    await store.close()


@pytest.mark.parametrize(
    ("text", "name", "args"),
    [
        ("/forget", "forget", ""),
        ("!undo", "undo", ""),
        ("  /HISTORY 2 ", "history", "2"),
        ("/help me please", "help", "me please"),
        ("/forgt", "forgt", ""),
    ],
)
async def test_commands_are_recognised(registry, text: str, name: str, args: str) -> None:
    invocation = registry.parse(text)
    assert invocation is not None
    assert (invocation.name, invocation.args) == (name, args)


@pytest.mark.parametrize(
    "text",
    ["hello", "/usr/bin is a folder", "!wow that's neat", "!wow", "what does /forget do?", ""],
)
async def test_chat_is_not_a_command(registry, text: str) -> None:
    assert registry.parse(text) is None


async def test_problems_are_explained(registry) -> None:
    unknown = registry.parse("/forgt")
    assert registry.problem(unknown, "!") == "I don't know !forgt. Try !help for the list."
    assert registry.problem(registry.parse("/history two")) == "Usage: /history [page]"
    assert registry.problem(registry.parse("/history 0")) == "Usage: /history [page]"
    assert registry.problem(registry.parse("/forget now")) == "Usage: /forget"
    assert registry.problem(registry.parse("/history 3")) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("forget", ("forget", "")),
        ("Forget", ("forget", "")),
        ("history 2", ("history", "2")),
        ("help", ("help", "")),
        ("!forget", ("forget", "")),
        ("forget 2", None),  # forget takes no argument: that is chat
        ("help me with my essay", None),
        ("forget everything I said", None),
        ("hello", None),
    ],
)
async def test_a_bare_command_name_said_to_the_bot_is_a_command(
    registry, text: str, expected: tuple[str, str] | None
) -> None:
    invocation = registry.parse(text, bare=True)
    found = None if invocation is None else (invocation.name, invocation.args)
    assert found == expected
    if not text.startswith("!"):
        assert registry.parse(text) is None  # unless said to the bot by name, it is chat
