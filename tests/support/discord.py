"""The Discord adapter on a real core, connected to the fake Discord: harness and fixtures."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # discord.py imports the deprecated `audioop` for voice, which the bot never uses, and
    # the test settings turn warnings into errors.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yarl
from agents import FunctionTool, Tool, function_tool
from discord.gateway import DiscordWebSocket

from adapters.discord import DiscordAdapter
from adapters.discord.settings import DiscordSettings
from bot.adapter import Decision
from bot.config import Config
from tests.fakes.discord_server import (
    BOT_ID,
    BOT_USER,
    MANAGE_GUILD,
    FakeDiscord,
    Json,
    role,
    user,
)
from tests.fakes.openai_server import FakeOpenAI, Fault, Responder, ToolCall, reply_from_history
from tests.support.parts import BotParts, make_config

GUILD = 10
CHANNEL = 20
OTHER_CHANNEL = 21
THREAD_A = 30
THREAD_B = 31
BOT_THREAD = 32
DM = 40
SHARD_1_GUILD = 336_642_139_381_301_249
"""A guild on shard 1 of 2, by Discord's `(guild_id >> 22) % num_shards` (GUILD is on shard 0)."""
SHARD_1_CHANNEL = 336_642_139_381_301_250
BOT_ROLE = 555
HELPER_ROLE = 556
MANAGER_ROLE = 557
"""A role with Manage Server."""
MODERATOR_ROLE = 558
"""A role without it, which a profiles file's `[admins]` may name."""
ANN = user(101, "Ann")
BOB = user(102, "Bob")
OTHER_BOT = user(103, "OtherBot", bot=True)
MENTION = f"<@{BOT_ID}>"
INTERVAL = 0.05


class ProbedAdapter(DiscordAdapter):
    """The real adapter, noting when each message and command has been fully handled."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handled: set[int] = set()

    async def on_message(self, message: discord.Message) -> None:
        try:
            await super().on_message(message)
        finally:
            self.handled.add(message.id)

    async def on_command(self, interaction: discord.Interaction[Any], name: str, args: str) -> None:
        try:
            await super().on_command(interaction, name, args)
        finally:
            self.handled.add(interaction.id)

    async def on_approval_click(
        self, interaction: discord.Interaction[Any], decision: Decision, approval_id: str
    ) -> None:
        try:
            await super().on_approval_click(interaction, decision, approval_id)
        finally:
            self.handled.add(interaction.id)


async def eventually(check: Callable[[], Any], within: float = 10.0, what: str = "it") -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while not (result := check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
    return result


class Harness:
    """One running bot: core + store + adapter connected to the fake Discord."""

    def __init__(
        self, fake: FakeDiscord, parts: BotParts, adapter: ProbedAdapter, *, owns_parts: bool
    ) -> None:
        self.fake = fake
        self.parts = parts
        self.adapter = adapter
        self.owns_parts = owns_parts
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        fake: FakeDiscord,
        config: Config,
        *,
        parts: BotParts | None = None,
        tools: Sequence[Tool] = (),
        **options: Any,
    ) -> Harness:
        """Start a bot on `config`; on `parts` (left open by `stop()`) if given, else its own
        (with `tools` for its agent beyond the built-in ones)."""
        owns_parts = parts is None
        if parts is None:
            parts = await BotParts(config, tools).start()
        settings = {
            "edit_interval": INTERVAL,
            "typing_interval": 5.0,
            "guild_ready_timeout": 0.01,
            **options,
        }
        adapter = ProbedAdapter(parts.core, DiscordSettings.from_config(config), **settings)
        harness = cls(fake, parts, adapter, owns_parts=owns_parts)
        harness.task = task = asyncio.create_task(adapter.run())
        try:
            await eventually(lambda: task.done() or adapter.client.is_ready(), what="ready")
            if task.done():
                task.result()  # raises what stopped it
                raise AssertionError("the adapter stopped before it was ready")
        except BaseException:
            await harness.stop()
            raise
        return harness

    async def stop(self) -> None:
        await self.adapter.close(grace=10.0)
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)
        if self.owns_parts:
            await self.parts.close()

    async def say(
        self,
        channel: int,
        text: str,
        *,
        author: Json = ANN,
        guild: int | None = GUILD,
        mention: bool = False,
        roles: list[int] = (),  # type: ignore[assignment]
        message_type: int = 0,
        attachments: list[Json] = (),  # type: ignore[assignment]
    ) -> Json:
        """Post a message as a person and wait until the bot has finished with it."""
        content = f"{MENTION} {text}" if mention else text
        payload = self.fake.user_message(
            channel,
            content,
            author=author,
            guild_id=guild,
            mentions=[BOT_USER] if mention else [],
            roles=roles,
            message_type=message_type,
            attachments=attachments,
        )
        await self.fake.dispatch("MESSAGE_CREATE", payload)
        await eventually(lambda: int(payload["id"]) in self.adapter.handled, what=text)
        return payload

    async def command(
        self,
        name: str,
        channel: Json,
        *,
        guild: int | None = GUILD,
        author: Json = ANN,
        options: list[Json] = (),  # type: ignore[assignment]
        roles: list[int] = (),  # type: ignore[assignment]
    ) -> Json:
        """Use a slash command and return the bot's interaction callback body."""
        payload = self.fake.command_interaction(
            name, channel=channel, author=author, guild_id=guild, options=options, roles=roles
        )
        await self.fake.dispatch("INTERACTION_CREATE", payload)
        await eventually(lambda: int(payload["id"]) in self.adapter.handled, what=f"/{name}")
        calls = self.fake.calls("POST", f"/interactions/{payload['id']}/")
        assert len(calls) == 1
        body: Json = calls[0].body
        return body

    async def click(
        self,
        prompt: Json,
        decision: Decision,
        *,
        channel: Json,
        author: Json = ANN,
        guild: int | None = GUILD,
        roles: list[int] = (),  # type: ignore[assignment]
    ) -> Json:
        """Click Approve or Reject on a prompt and wait until the bot has finished with it.

        `prompt` is the message as the clicker's client shows it: the live one from the fake,
        or a copy taken earlier for a click sent just before the bot changed it.

        Returns:
            The INTERACTION_CREATE payload that was sent.
        """
        button = next(
            b for b in buttons(prompt) if b["custom_id"].startswith(f"approval:{decision.value}:")
        )
        payload = self.fake.component_interaction(
            int(prompt["id"]),
            button["custom_id"],
            channel=channel,
            author=author,
            guild_id=guild,
            roles=roles,
            seen=prompt,
        )
        await self.fake.dispatch("INTERACTION_CREATE", payload)
        await eventually(
            lambda: int(payload["id"]) in self.adapter.handled, what=f"{decision.value} click"
        )
        return payload

    def prompts(self, channel: int) -> list[Json]:
        """The bot's messages in `channel` that carry buttons now."""
        return [m for m in self.fake.channel_messages(channel) if buttons(m)]

    def shown(self, channel: int) -> list[str]:
        """What the bot's messages in `channel` say now, oldest first."""
        return [m["content"] for m in self.fake.channel_messages(channel)]

    def last(self, channel: int) -> str:
        shown = self.shown(channel)
        assert shown, f"no bot message in channel {channel}"
        return shown[-1]


def buttons(message: Json) -> list[Json]:
    """The buttons on a message, in order."""
    return [c for row in message.get("components", []) for c in row.get("components", [])]


class TicketDesk:
    """A `lookup_ticket` function tool for the agent, noting every call it really runs."""

    def __init__(self) -> None:
        self.looked_up: list[str] = []

    def tool(self, *, needs_approval: bool) -> FunctionTool:
        async def lookup_ticket(ticket_id: str) -> str:
            """Look up a support ticket by its ID.

            Args:
                ticket_id: The ticket's ID, like T-1.
            """
            self.looked_up.append(ticket_id)
            return f"{ticket_id} is open: printer on fire"

        return function_tool(lookup_ticket, needs_approval=needs_approval)


def calls_lookup(trigger: str = "ticket", inner: Responder = reply_from_history) -> Responder:
    """A model that calls `lookup_ticket` when the newest user message mentions `trigger`, and
    answers from the tool's output once it has one."""

    def respond(messages: list[dict[str, Any]]) -> str | ToolCall | Fault:
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            return f"The ticket says: {last.get('content')}"
        if last.get("role") == "user" and trigger in json.dumps(last.get("content")):
            return ToolCall("lookup_ticket", {"ticket_id": "T-1"})
        return inner(messages)

    return respond


def channel_payload(channel_id: int) -> Json:
    return FakeDiscord.text_channel(channel_id, GUILD)


def thread(thread_id: int, owner: int) -> Json:
    return FakeDiscord.thread_payload(thread_id, parent_id=CHANNEL, guild_id=GUILD, owner_id=owner)


@pytest.fixture
async def fake_discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
        monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
        guild = fake.add_guild(
            GUILD,
            channels=[channel_payload(CHANNEL), channel_payload(OTHER_CHANNEL)],
            roles=[
                {
                    "id": str(BOT_ROLE),
                    "name": "memorybot",
                    "permissions": "0",
                    "position": 1,
                    "managed": True,
                    "tags": {"bot_id": str(BOT_ID)},
                },
                {"id": str(HELPER_ROLE), "name": "helpers", "permissions": "0", "position": 2},
                role(MANAGER_ROLE, "Managers", MANAGE_GUILD, position=3),
                role(MODERATOR_ROLE, "Moderators", position=4),
            ],
        )
        guild["threads"] = [
            thread(THREAD_A, 101),
            thread(THREAD_B, 102),
            thread(BOT_THREAD, BOT_ID),
        ]
        yield fake


def discord_config(
    fake_openai: FakeOpenAI,
    db_path: str | Path,
    *,
    env: dict[str, str] | None = None,
    **overrides: Any,
) -> Config:
    """Core settings plus the `DISCORD_*` variables for the fake guild (and `env`)."""
    environment = {"DISCORD_TOKEN": "fake-discord-token", "DISCORD_DEV_GUILD": str(GUILD)}
    return make_config(
        fake_openai, db_path, environment={**environment, **(env or {})}, **overrides
    )


@pytest.fixture
async def running(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> AsyncIterator[Harness]:
    """A bot on the fake guild, with the default settings."""
    harness = await Harness.start(
        fake_discord, discord_config(fake_openai, tmp_path / "memory.sqlite3")
    )
    yield harness
    await harness.stop()
