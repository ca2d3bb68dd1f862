"""Approval prompts and tool status on Discord, part by part; and the fake's interaction rules.

The end-to-end flows are in `test_discord_tools`; this covers the pure helpers, the streamed
status line on its own, and that the fake Discord refuses what Discord refuses (so tests on it
mean something).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from adapters.discord.prompts import (
    CUSTOM_ID,
    OUTCOME_LINES,
    PromptAddress,
    custom_id,
    decided_line,
    settled_text,
)
from adapters.discord.stream import DiscordReply, tool_status
from adapters.discord.text import MAX_MESSAGE_CHARS
from adapters.streaming import ChannelThrottle
from bot.adapter import ApprovalEnding, Decision
from tests.fakes.discord_server import APP_ID, FakeDiscord, Json
from tests.fakes.openai_server import FakeOpenAI
from tests.support.discord import (
    ANN,
    CHANNEL,
    THREAD_A,
    Harness,
    TicketDesk,
    buttons,
    calls_lookup,
    discord_config,
    thread,
)

# ----- pure helpers --------------------------------------------------------------------------


def test_custom_ids_fit_discord_s_limit_and_round_trip() -> None:
    longest = custom_id(Decision.REJECT, "x" * 84)
    assert len(longest) == 100
    match = CUSTOM_ID.fullmatch(longest)
    assert match is not None
    assert (match["decision"], match["approval_id"]) == ("reject", "x" * 84)
    assert CUSTOM_ID.fullmatch(custom_id(Decision.APPROVE, "Ab-_9")) is not None
    for foreign in ("approval:maybe:abc", "approval:approve:", "other:approve:abc"):
        assert CUSTOM_ID.fullmatch(foreign) is None


@pytest.mark.parametrize(
    ("prompt", "line", "expected"),
    [
        ("Run it?", "✅ Approved by Ann", "Run it?\n\n✅ Approved by Ann"),
        ("", "⌛ Expired — not run", "⌛ Expired — not run"),
    ],
)
def test_settled_text_keeps_the_request_and_adds_the_outcome(
    prompt: str, line: str, expected: str
) -> None:
    assert settled_text(prompt, line) == expected


def test_settled_text_fits_one_message() -> None:
    text = settled_text("a" * MAX_MESSAGE_CHARS, OUTCOME_LINES[ApprovalEnding.CANCELLED])
    assert len(text) == MAX_MESSAGE_CHARS
    assert text.endswith("…\n\n🚫 Cancelled — a new message came in")


def test_decided_lines_escape_markdown_in_names() -> None:
    assert decided_line(Decision.APPROVE, "Ann") == "✅ Approved by Ann"
    assert decided_line(Decision.REJECT, "*Bo*") == "❌ Rejected by \\*Bo\\*"


def test_prompt_addresses_round_trip_and_foreign_ones_are_refused() -> None:
    address = PromptAddress(30, 1_100_000_000_000_000_006)
    assert PromptAddress.loads(address.dumps()) == address
    for foreign in ("", "{}", '{"channel": "C1", "ts": "1.2"}', "not json"):
        with pytest.raises(ValueError, match="not a Discord prompt address"):
            PromptAddress.loads(foreign)


# ----- the status line -----------------------------------------------------------------------


class Screen:
    """A poster keeping what each message shows; handles are message numbers."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.writes: list[str] = []

    async def send(self, text: str, *, first: bool) -> int:
        self.shown.append(text)
        self.writes.append(text)
        return len(self.shown) - 1

    async def edit(self, handle: int, text: str) -> int:
        self.shown[handle] = text
        self.writes.append(text)
        return handle

    async def delete(self, handle: int) -> None:
        self.shown.pop(handle)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_the_status_line_goes_under_the_text_and_the_next_delta_drops_it() -> None:
    screen = Screen()
    # Handles are ints here; the reply never looks inside them except to add buttons.
    reply = DiscordReply(cast(Any, screen), ChannelThrottle(0.0), 1, limit=MAX_MESSAGE_CHARS)
    reply.show_status(tool_status("lookup_ticket"))
    await settle()
    assert screen.shown == ["Using `lookup_ticket`…"]
    await reply.add("Let me check. ")
    await settle()
    assert screen.shown == ["Let me check. "]
    reply.show_status(tool_status("search_thread"))
    await settle()
    assert screen.shown == ["Let me check.\n\nUsing `search_thread`…"]
    assert await reply.finish("Done.")
    assert screen.shown == ["Done."]
    reply.show_status(tool_status("late"))  # after the final text: nothing changes
    await settle()
    assert screen.shown == ["Done."]


# ----- the fake refuses what Discord refuses -------------------------------------------------


def row(*items: Json) -> Json:
    return {"type": 1, "components": list(items)}


def button(custom: str | None, *, style: int = 1, label: str = "Go", url: str = "") -> Json:
    data: Json = {"type": 2, "style": style, "label": label}
    if custom is not None:
        data["custom_id"] = custom
    if url:
        data["url"] = url
    return data


@pytest.mark.parametrize(
    "components",
    [
        [row(button("x" * 101))],
        [row(button("same"), button("same"))],
        [row(*(button(f"b{i}") for i in range(6)))],
        [row(button(f"r{i}")) for i in range(6)],
        [button("not in a row")],
        [row(button(None, style=5))],
        [row(button("x", label="l" * 81))],
    ],
)
async def test_the_fake_refuses_components_discord_refuses(
    fake_discord: FakeDiscord, components: list[Json]
) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{fake_discord.api_base}/channels/{CHANNEL}/messages"
        async with session.post(url, json={"content": "hi", "components": components}) as sent:
            assert sent.status == 400
            assert (await sent.json())["code"] == 50035
        ok = {
            "content": "hi",
            "components": [row(button("a"), button(None, style=5, url="https://x"))],
        }
        async with session.post(url, json=ok) as sent:
            assert sent.status == 200
            assert (await sent.json())["components"] == ok["components"]


async def test_the_fake_takes_one_initial_response_within_three_seconds(
    fake_discord: FakeDiscord,
) -> None:
    channel = FakeDiscord.text_channel(CHANNEL, 10)
    async with aiohttp.ClientSession() as session:
        posted = {"content": "?", "components": [row(button("a"))]}
        async with session.post(
            f"{fake_discord.api_base}/channels/{CHANNEL}/messages", json=posted
        ) as sent:
            message = await sent.json()

        async def respond(interaction: Json, body: Json) -> tuple[int, Json]:
            url = (
                f"{fake_discord.api_base}/interactions/{interaction['id']}/"
                f"{interaction['token']}/callback?with_response=true"
            )
            async with session.post(url, json=body) as answer:
                return answer.status, await answer.json()

        click = fake_discord.component_interaction(
            int(message["id"]), "a", channel=channel, author=ANN, guild_id=10
        )
        followup = f"{fake_discord.api_base}/webhooks/{APP_ID}/{click['token']}"
        async with session.post(followup, json={"content": "too early"}) as early:
            assert (early.status, (await early.json())["code"]) == (404, 10015)
        assert (await respond(click, {"type": 6}))[0] == 200
        status, body = await respond(click, {"type": 6})
        assert (status, body["code"]) == (400, 40060)
        async with session.post(followup, json={"content": "psst", "flags": 64}) as sent:
            assert sent.status == 200
        assert [m["content"] for m in fake_discord.ephemeral_messages(int(ANN["id"]))] == ["psst"]
        assert fake_discord.channel_messages(CHANNEL) == [message]

        late = fake_discord.component_interaction(
            int(message["id"]), "a", channel=channel, author=ANN, guild_id=10
        )
        fake_discord.ack_seconds = 0.0
        await asyncio.sleep(0.01)
        status, body = await respond(late, {"type": 6})
        assert (status, body["code"]) == (404, 10062)

        command = fake_discord.command_interaction("help", channel=channel, author=ANN, guild_id=10)
        fake_discord.ack_seconds = 3.0
        status, _ = await respond(command, {"type": 6})  # only for components
        assert status == 400


# ----- acknowledged before the work ------------------------------------------------------------


async def test_a_click_is_acknowledged_before_the_resumed_turn_runs(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    desk = TicketDesk()
    fake_openai.responder = calls_lookup()
    config = discord_config(fake_openai, tmp_path / "memory.sqlite3")
    harness = await Harness.start(fake_discord, config, tools=[desk.tool(needs_approval=True)])
    try:
        await harness.say(THREAD_A, "ticket T-1?", mention=True)
        prompt = harness.prompts(THREAD_A)[0]
        # Discord gives 3 s; here 0.3 s, with a model slower than that.
        fake_discord.ack_seconds = 0.3
        fake_openai.latency = 0.6
        await harness.click(prompt, Decision.APPROVE, channel=thread(THREAD_A, 101))
        assert harness.shown(THREAD_A)[-1].startswith("The ticket says:")
        assert not buttons(fake_discord.messages[int(prompt["id"])])
        assert all(r.status == 200 for r in fake_discord.requests if "/interactions/" in r.path)
    finally:
        await harness.stop()
