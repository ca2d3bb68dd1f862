"""Profiles end to end on the core: the real openai client and Runner against two fake model
servers, real SQLite files and the real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agents import FunctionTool, function_tool

from bot.messages import Decision, IncomingMessage, Place, Reply, ReplyKind, Surface
from bot.profiles.spec import Admins, ProfileBook, Rule
from tests.fakes.openai_server import (
    FakeOpenAI,
    RequestRecord,
    ToolCall,
    message_text,
    user_texts,
)
from tests.support.parts import BotParts, make_config
from tests.support.postgres import PostgresSchema
from tests.support.profiles import GENERAL_TEXT, SUPPORT_TEXT, support_and_general

CHAT = Surface(max_chars=4000)
GUILD = "900"
SUPPORT = "100"
GENERAL = "200"


@function_tool
def lookup_order(order: str) -> str:
    """Look up an order by its number."""
    return f"Order {order}: shipped."


@function_tool
def roll_dice(sides: int) -> str:
    """Roll a die."""
    return "4"


TOOLS: list[FunctionTool] = [lookup_order, roll_dice]
SOURCES = {"lookup_order": "orders", "roll_dice": "games"}


def book(support_url: str) -> ProfileBook:
    """Support on its own model server with the orders tool; general with no tools."""
    return support_and_general(
        support_url,
        (
            Rule(1, "support", platform="discord", workspace=GUILD, channel=SUPPORT),
            Rule(2, "general", platform="discord", workspace=GUILD),
        ),
        admins=Admins(discord_roles=frozenset({"Moderators"})),
        support_tools=("orders",),
        general_tools=(),
    )


def message(
    text: str,
    *,
    channel: str,
    thread: str | None = None,
    author: str = "Ann",
    admin: bool = False,
    roles: frozenset[str] = frozenset(),
) -> IncomingMessage:
    where = thread or channel
    return IncomingMessage(
        "discord",
        f"discord:{GUILD}:{where}",
        f"id-{author}",
        author,
        text,
        channel_key=None if thread is None else f"discord:{GUILD}:{channel}",
        place=Place(GUILD, channel, False),
        author_admin=admin,
        author_roles=roles,
    )


async def say(parts: BotParts, text: str, **where: Any) -> Reply:
    return await parts.core.handle(message(text, **where), CHAT)


def tools_of(request: RequestRecord) -> list[str]:
    return [tool["function"]["name"] for tool in request.body.get("tools") or []]


@pytest.fixture
async def support_fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


async def start(fake: FakeOpenAI, support: FakeOpenAI, db: str | Path, **config: Any) -> BotParts:
    return await BotParts(
        make_config(fake, db, **config),
        TOOLS,
        profiles=book(support.base_url),
        tool_sources=SOURCES,
        choices_refresh=0.2,
    ).start()


async def test_each_channel_gets_its_profile_agent_model_tools_and_server(
    fake_openai: FakeOpenAI, support_fake: FakeOpenAI, tmp_path: Path
) -> None:
    parts = await start(fake_openai, support_fake, tmp_path / "m.sqlite3")
    try:
        assert (await say(parts, "where is my parcel?", channel=SUPPORT)).kind is ReplyKind.ANSWER
        assert (await say(parts, "tell me a joke", channel=GENERAL)).kind is ReplyKind.ANSWER
        dm = IncomingMessage(
            "discord", "discord:-:77", "id-Ann", "Ann", "hi", place=Place(None, "77", True)
        )
        assert (await parts.core.handle(dm, CHAT)).kind is ReplyKind.ANSWER
    finally:
        await parts.close()
    [support] = support_fake.requests
    assert support.body["model"] == "support-model"
    assert message_text(support.messages[0]).startswith(SUPPORT_TEXT)
    assert tools_of(support) == ["search_thread", "lookup_order"]
    general, default = fake_openai.requests
    assert general.body["model"] == "general-model"
    assert message_text(general.messages[0]).startswith(GENERAL_TEXT)
    assert tools_of(general) == ["search_thread"]
    # A DM matches no rule: the global settings, every tool.
    assert default.body["model"] == "fake-model"
    assert tools_of(default) == ["search_thread", "lookup_order", "roll_dice"]
    # The support profile's own server got no key: the global one stays with its endpoint.
    assert support.authorization == "Bearer not-needed"
    assert general.authorization == "Bearer sk-test-not-a-real-key"


async def test_instructions_are_byte_stable_across_turns(
    fake_openai: FakeOpenAI, support_fake: FakeOpenAI, tmp_path: Path
) -> None:
    parts = await start(fake_openai, support_fake, tmp_path / "m.sqlite3")
    try:
        for text in ("one", "two", "three"):
            await say(parts, text, channel=SUPPORT)
    finally:
        await parts.close()
    systems = {message_text(r.messages[0]) for r in support_fake.requests}
    assert len(systems) == 1


async def test_an_admin_switches_the_channel_and_it_lasts_across_a_restart(
    fake_openai: FakeOpenAI, support_fake: FakeOpenAI, tmp_path: Path
) -> None:
    db = tmp_path / "m.sqlite3"
    parts = await start(fake_openai, support_fake, db)
    try:
        refused = await say(parts, "/profile support", channel=GENERAL, author="Bob")
        assert refused.kind is ReplyKind.COMMAND
        assert refused.text.startswith("Sorry, only admins can switch the profile here")
        await say(parts, "hello", channel=GENERAL, author="Bob")
        assert fake_openai.requests[-1].body["model"] == "general-model"
        unknown = await say(parts, "/profile sales", channel=GENERAL, admin=True)
        assert unknown.text == "There is no profile “sales”. Profiles: default, support, general."
        switched = await say(
            parts, "/profile support", channel=GENERAL, roles=frozenset({"Moderators"})
        )
        assert switched.text.startswith("Done: this channel now uses the profile support")
    finally:
        await parts.close()
    parts = await start(fake_openai, support_fake, db)
    try:
        shown = await say(parts, "/profile", channel=GENERAL)
        assert shown.text.splitlines()[0] == "Profile here: support (switched in the chat)."
        assert f"Model: support-model at 127.0.0.1:{support_fake.port}" in shown.text
        await say(parts, "after the restart", channel=GENERAL)
        assert support_fake.requests[-1].body["model"] == "support-model"
        dropped = await say(parts, "/profile default", channel=GENERAL, admin=True)
        assert "rule 2 of profiles.toml applies: the profile general" in dropped.text
        await say(parts, "and now?", channel=GENERAL)
        assert fake_openai.requests[-1].body["model"] == "general-model"
    finally:
        await parts.close()


async def test_switching_mid_thread_keeps_the_threads_memory(
    fake_openai: FakeOpenAI, support_fake: FakeOpenAI, tmp_path: Path
) -> None:
    parts = await start(fake_openai, support_fake, tmp_path / "m.sqlite3")
    try:
        await say(parts, "my order is 4417", channel=GENERAL, thread="300")
        await say(parts, "/profile support", channel=GENERAL, thread="301", admin=True)
        await say(parts, "what is my order?", channel=GENERAL, thread="300")
        usage = await say(parts, "/usage", channel=GENERAL, thread="300")
    finally:
        await parts.close()
    last = support_fake.requests[-1]
    assert user_texts(last.messages) == ["[Ann] my order is 4417", "[Ann] what is my order?"]
    # Each turn recorded the profile it ran under.
    assert "By profile: " in usage.text
    assert "general " in usage.text
    assert "support " in usage.text


async def test_support_customers_each_remember_their_own_order(
    fake_openai: FakeOpenAI, support_fake: FakeOpenAI, tmp_path: Path
) -> None:
    parts = await start(fake_openai, support_fake, tmp_path / "m.sqlite3")
    try:
        await say(parts, "my order number is A-1111", channel=SUPPORT, thread="501", author="Ann")
        await say(parts, "my order number is B-2222", channel=SUPPORT, thread="502", author="Bea")
        ann = await say(
            parts, "what was my order number?", channel=SUPPORT, thread="501", author="Ann"
        )
        bea = await say(
            parts, "what was my order number?", channel=SUPPORT, thread="502", author="Bea"
        )
    finally:
        await parts.close()
    assert "A-1111" in ann.text
    assert "B-2222" not in ann.text
    assert "B-2222" in bea.text
    assert "A-1111" not in bea.text
    assert not fake_openai.requests  # all of it on the support profile's server


async def test_a_switch_on_one_worker_is_seen_by_another_on_postgres(
    fake_openai: FakeOpenAI, support_fake: FakeOpenAI, postgres: PostgresSchema, tmp_path: Path
) -> None:
    first = await start(fake_openai, support_fake, tmp_path / "unused", database_url=postgres.url)
    second = await start(fake_openai, support_fake, tmp_path / "unused", database_url=postgres.url)
    try:
        await say(second, "before", channel=GENERAL)
        assert fake_openai.requests[-1].body["model"] == "general-model"
        await say(first, "/profile support", channel=GENERAL, admin=True)
        # `/profile` reads afresh; turns see it once the worker's copy is refreshed.
        shown = await say(second, "/profile", channel=GENERAL)
        assert shown.text.startswith("Profile here: support")
        await asyncio.sleep(0.3)
        await say(second, "after", channel=GENERAL)
        assert support_fake.requests[-1].body["model"] == "support-model"
        refused = await say(second, "/profile default", channel=GENERAL, author="Bob")
        assert refused.text.startswith("Sorry")
        assert (await second.store.profile_choices()) == {f"discord:{GUILD}:{GENERAL}": "support"}
    finally:
        await first.close()
        await second.close()


async def test_a_paused_turn_resumes_under_the_profile_it_started_with(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    cancelled: list[str] = []

    @function_tool(needs_approval=True)
    async def cancel_order(order: str) -> str:
        """Cancel an order.

        Args:
            order: The order's number.
        """
        cancelled.append(order)
        return f"Order {order} cancelled."

    def desk(messages: list[dict[str, Any]]) -> str | ToolCall:
        last = messages[-1]
        if last.get("role") == "tool":
            return f"Done: {message_text(last)}"
        return ToolCall("cancel_order", {"order": "A-1111"})

    async with FakeOpenAI(desk) as support:
        parts = await BotParts(
            make_config(fake_openai, tmp_path / "m.sqlite3"),
            [cancel_order],
            profiles=book(support.base_url),
            tool_sources={"cancel_order": "orders"},
        ).start()
        try:
            paused = await say(parts, "cancel my order", channel=SUPPORT)
            assert paused.kind is ReplyKind.APPROVAL
            assert paused.approval is not None
            # The channel changes profile while the call waits: the run still resumes with
            # the support agent, its tool and its server.
            await say(parts, "/profile general", channel=SUPPORT, admin=True)
            done = await parts.core.decide(
                paused.approval.approval_id, Decision.APPROVE, user_id="id-Ann", user_name="Ann"
            )
            report = await parts.store.usage_report("profile")
        finally:
            await parts.close()
        assert done.text == "Done: Order A-1111 cancelled."
        assert cancelled == ["A-1111"]
        assert [r.body["model"] for r in support.requests] == ["support-model", "support-model"]
        assert not fake_openai.requests
        assert [line.key for line in report] == ["support"]
