"""The fake Discord refuses what Discord refuses, so tests on it mean something: message
components, and the one initial response an interaction takes within three seconds."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.fakes.discord_server import APP_ID, FakeDiscord, Json
from tests.support.discord import ANN, CHANNEL


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
