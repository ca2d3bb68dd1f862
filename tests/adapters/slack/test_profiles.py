"""Profiles on Slack: the real slack-bolt against the fake Slack (Socket Mode), the real core
against two fake model servers. Each channel's profile answers it, threads included, and only
workspace admins and owners, or the users `[admins]` lists, switch it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.profiles.spec import Admins, ProfileBook, Rule
from tests.fakes.openai_server import FakeOpenAI, message_text
from tests.fakes.slack_server import TEAM, FakeSlack
from tests.support.profiles import SUPPORT_TEXT, support_and_general
from tests.support.slack import ANN, BEN, CHANNEL, running

OTHER = "C0OTHER"
CAT = "U0CAT"


def book(support_url: str) -> ProfileBook:
    return support_and_general(
        support_url,
        (
            Rule(1, "support", platform="slack", workspace=TEAM, channel=CHANNEL),
            Rule(2, "general", platform="slack", workspace=TEAM),
        ),
        admins=Admins(slack_users=frozenset({CAT})),
    )


@pytest.fixture
async def support_model() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


async def test_each_channel_and_its_threads_get_their_profile(
    slack: FakeSlack, fake_openai: FakeOpenAI, support_model: FakeOpenAI, tmp_path: Path
) -> None:
    profiles = book(support_model.base_url)
    async with running(slack, fake_openai, tmp_path / "m.sqlite3", profiles=profiles) as bot:
        root = await bot.mention("my parcel is late")
        await bot.answer(CHANNEL, root)
        await bot.mention("and the other one?", thread_ts=root)
        await bot.answer(CHANNEL, root, count=2)
        other = await bot.mention("tell me a joke", channel=OTHER)
        await bot.answer(OTHER, other)
    assert [r.body["model"] for r in support_model.requests] == ["support-model"] * 2
    assert all(message_text(r.messages[0]).startswith(SUPPORT_TEXT) for r in support_model.requests)
    assert [r.body["model"] for r in fake_openai.requests] == ["general-model"]


async def test_only_admins_owners_and_listed_users_switch(
    slack: FakeSlack, fake_openai: FakeOpenAI, support_model: FakeOpenAI, tmp_path: Path
) -> None:
    slack.roles[BEN] = "owner"
    profiles = book(support_model.base_url)
    async with running(slack, fake_openai, tmp_path / "m.sqlite3", profiles=profiles) as bot:

        async def slash(text: str, user: str) -> str:
            before = len(slack.responses)
            await slack.deliver("slash_commands", bot.slash("/profile", text, OTHER, user))
            await slack.wait_for(lambda: len(slack.responses) > before)
            return str(slack.responses[-1]["text"])

        refused = await slash("support", ANN)
        assert refused.startswith("Sorry, only admins can switch the profile here")
        assert (await slash("", ANN)).startswith("Profile here: general (rule 2 of profiles.toml).")
        switched = await slash("support", BEN)
        assert switched.startswith("Done: this channel now uses the profile support")
        assert (await slash("default", CAT)).startswith("Done: the switch made here is dropped")
        assert (await slash("support", CAT)).startswith("Done: this channel now uses")
        ts = await bot.mention("hello", channel=OTHER)
        await bot.answer(OTHER, ts)
        assert slack.responses[0]["response_type"] == "ephemeral"
    assert support_model.requests[-1].body["model"] == "support-model"
    assert not fake_openai.requests
