"""Counting Discord API calls for `/metrics`: the aiohttp trace on the real discord.py, against
the fake Discord."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # discord.py imports the deprecated `audioop` for voice, which the bot never uses, and
    # the test settings turn warnings into errors.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI
from tests.support.discord import CHANNEL, Harness, discord_config

RETRIES = "memorybot_platform_api_retries_total"
ERRORS = "memorybot_platform_api_errors_total"
SENDS = rf"^/channels/{CHANNEL}/messages$"


@pytest.fixture
async def counted(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> AsyncIterator[Harness]:
    """A bot with metrics, so its discord.py client carries the counting trace."""
    config = discord_config(fake_openai, tmp_path / "memory.sqlite3", metrics_port=0)
    harness = await Harness.start(fake_discord, config)
    yield harness
    await harness.stop()


def tries(harness: Harness) -> list[int]:
    """The status of every message sent to CHANNEL, failed ones included."""
    return [
        r.status for r in harness.fake.requests if r.method == "POST" and re.search(SENDS, r.path)
    ]


def count(harness: Harness, name: str, **labels: str) -> float:
    metrics = harness.parts.metrics
    assert metrics is not None
    value = metrics.registry.get_sample_value(name, {"platform": "discord", **labels})
    return value or 0.0


async def test_a_call_failing_on_its_last_try_has_one_retry_fewer_than_tries(
    counted: Harness,
) -> None:
    # discord.py tries a rate-limited call five times in all, then gives up.
    counted.fake.fail("POST", SENDS, 429, times=5)
    channel = counted.adapter.client.get_partial_messageable(CHANNEL)
    with pytest.raises(discord.HTTPException):
        await channel.send("never through")
    assert tries(counted) == [429] * 5
    assert count(counted, ERRORS, status="429") == 5
    assert count(counted, RETRIES) == 4


async def test_a_call_through_on_its_third_try_has_two_retries(counted: Harness) -> None:
    counted.fake.fail("POST", SENDS, 429, times=2)
    channel = counted.adapter.client.get_partial_messageable(CHANNEL)
    await channel.send("third time lucky")
    assert tries(counted) == [429, 429, 200]
    assert count(counted, RETRIES) == 2
    # The count starts afresh with the next call: it fails for good, on its only try.
    counted.fake.fail("POST", SENDS, 403)
    with pytest.raises(discord.Forbidden):
        await channel.send("not allowed")
    assert count(counted, RETRIES) == 2
    assert count(counted, ERRORS, status="403") == 1


async def test_a_429_discord_py_gives_up_on_at_once_counts_no_retry(counted: Harness) -> None:
    # Cloudflare's ban answers with a page of its own, not Discord's JSON: discord.py raises
    # at once, so this failing try is the call's last.
    counted.fake.fail("POST", SENDS, 429, cloudflare=True)
    channel = counted.adapter.client.get_partial_messageable(CHANNEL)
    with pytest.raises(discord.HTTPException):
        await channel.send("banned")
    assert tries(counted) == [429]
    assert count(counted, ERRORS, status="429") == 1
    assert count(counted, RETRIES) == 0
