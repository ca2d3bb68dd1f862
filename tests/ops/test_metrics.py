"""`/metrics` after real turns (the real Runner against the fake model), fetched over HTTP and
read with prometheus_client's parser; platform API errors and retries through the real
discord.py and slack_sdk against the fake platforms."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from agents import function_tool

from bot.messages import Decision, IncomingMessage, ReplyKind
from bot.ops.metrics import NO_OBSERVER, Metrics
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI, Fault, calling
from tests.fakes.slack_server import ApiFault, FakeSlack
from tests.support.discord import CHANNEL, Harness, discord_config
from tests.support.metrics import Scrape, serving
from tests.support.parts import BotParts, make_config
from tests.support.sinks import Recorder
from tests.support.slack import running

OURS = ("memorybot_", "process_", "python_")


@pytest.fixture
async def watched(fake_openai: FakeOpenAI, tmp_path: Path) -> AsyncIterator[BotParts]:
    """A bot whose core reports to metrics; each person may start 3 turns a minute."""
    config = make_config(
        fake_openai, tmp_path / "memory.sqlite3", metrics_port=0, rate_limit_per_minute=3
    )
    parts = await BotParts(config).start()
    yield parts
    await parts.close()


def metrics_of(parts: BotParts) -> Metrics:
    assert parts.metrics is not None
    return parts.metrics


def said(session: str, author: str, text: str) -> IncomingMessage:
    return IncomingMessage("test", session, author, author.title(), text)


async def test_turns_tokens_waits_writes_and_commands_are_counted(
    watched: BotParts, fake_openai: FakeOpenAI
) -> None:
    core = watched.core
    for n in range(3):
        reply = await core.handle(said("test:one", "ann", f"question {n}"), sink=Recorder())
        assert reply.kind is ReplyKind.ANSWER
    refused = await core.handle(said("test:one", "ann", "one too many"), sink=Recorder())
    assert refused.kind is ReplyKind.NOTICE
    assert (await core.handle(said("test:two", "bob", "   "))).kind is ReplyKind.NOTICE
    fake_openai.fail_next(Fault(status=500))
    failed = await core.handle(said("test:two", "bob", "this fails"), sink=Recorder())
    assert failed.kind is ReplyKind.ERROR
    for command in ("/history", "/forget", "/nonsense"):
        reply = await core.handle(said("test:two", "bob", command))
        assert reply.kind is ReplyKind.COMMAND

    async with serving(registry=metrics_of(watched).registry) as http:
        scrape = await http.scrape()

    turns = "memorybot_turns_total"
    assert scrape.value(turns, platform="test", outcome="answered") == 3
    assert scrape.value(turns, platform="test", outcome="rate_limited") == 1
    assert scrape.value(turns, platform="test", outcome="empty") == 1
    assert scrape.value(turns, platform="test", outcome="model_server_error") == 1
    assert scrape.value(turns) == 6
    # Latency for every turn that ran; the first token only where words were shown.
    assert scrape.value("memorybot_turn_duration_seconds_count", platform="test") == 4
    assert scrape.value("memorybot_time_to_first_token_seconds_count", platform="test") == 3
    # Tokens as the model reported them, for the configured model.
    answered = [r for r in fake_openai.completed if r.prompt_tokens]
    tokens = "memorybot_model_tokens_total"
    assert scrape.value(tokens, kind="input", model="fake-model") == sum(
        r.prompt_tokens for r in answered
    )
    assert scrape.value(tokens, kind="cached", model="fake-model") == sum(
        r.cached_tokens for r in answered
    )
    assert scrape.value(tokens, kind="output", model="fake-model") > 0
    # Every turn and command that held a thread waited for it (briefly); turns for a slot.
    assert scrape.value("memorybot_wait_seconds_count", resource="thread") == 6
    assert scrape.value("memorybot_wait_seconds_count", resource="model_slot") == 4
    assert scrape.value("memorybot_turns_waiting") == 0
    assert scrape.value("memorybot_active_turns") == 0
    # Three turns stored, and /forget's delete.
    assert scrape.value("memorybot_store_write_seconds_count") == 4
    for command in ("history", "forget", "unknown"):
        assert scrape.value("memorybot_commands_total", command=command) == 1
    # The process's own metrics, on the bot's registry.
    assert {"process_cpu_seconds_total", "python_info"} <= scrape.names()
    assert "python_gc_objects_collected_total" in scrape.names()
    assert all(name.startswith(OURS) for name in scrape.names())
    # Nothing that grows with the number of threads or people.
    assert not scrape.label_values() & {"test:one", "test:two", "ann", "bob", "Ann", "Bob"}


async def test_turns_waiting_for_a_thread_or_a_model_slot_are_counted_while_they_wait(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    config = make_config(fake_openai, tmp_path / "m.sqlite3", metrics_port=0, max_concurrency=1)
    parts = await BotParts(config).start()
    try:
        metrics = metrics_of(parts)
        held = HeldSink()
        first = asyncio.create_task(parts.core.handle(said("test:a", "ann", "first"), sink=held))
        await held.streaming.wait()  # holds thread test:a and the only model slot
        same_thread = asyncio.create_task(parts.core.handle(said("test:a", "bob", "second")))
        other_thread = asyncio.create_task(parts.core.handle(said("test:b", "cy", "third")))
        async with serving(registry=metrics.registry) as http:

            async def waiting() -> Scrape | None:
                scrape = await http.scrape()
                counts = (
                    scrape.value("memorybot_turns_waiting", resource="thread"),
                    scrape.value("memorybot_turns_waiting", resource="model_slot"),
                )
                return scrape if counts == (1, 1) else None

            scrape = await _until(waiting)
            assert scrape.value("memorybot_active_turns") == 3
            held.release.set()
            replies = await asyncio.gather(first, same_thread, other_thread)
            assert all(reply.kind is ReplyKind.ANSWER for reply in replies)
            after = await http.scrape()
        assert after.value("memorybot_turns_waiting") == 0
        assert after.value("memorybot_active_turns") == 0
        assert after.value("memorybot_wait_seconds_count", resource="thread") == 3
        assert after.value("memorybot_wait_seconds_count", resource="model_slot") == 3
    finally:
        await parts.close()


async def test_without_metrics_the_core_reports_to_nobody(bot: BotParts) -> None:
    assert bot.metrics is None
    assert bot.core.platform_api("discord") is None
    reply = await bot.core.handle(said("test:x", "ann", "hello"), sink=Recorder())
    assert reply.kind is ReplyKind.ANSWER
    assert NO_OBSERVER.platform_api("slack") is None


async def test_discord_api_errors_and_the_retries_of_discord_py_are_counted(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    config = discord_config(fake_openai, tmp_path / "memory.sqlite3", metrics_port=0)
    harness = await Harness.start(fake_discord, config)
    try:
        async with serving(registry=metrics_of(harness.parts).registry) as http:
            before = await http.scrape()
            # discord.py waits out a 429 and sends again; a 503 it leaves to the adapter.
            fake_discord.fail("POST", rf"^/channels/{CHANNEL}/messages$", 429)
            await harness.say(CHANNEL, "hello", mention=True)
            fake_discord.fail("POST", rf"^/channels/{CHANNEL}/messages$", 503)
            await harness.say(CHANNEL, "again", mention=True)
            assert harness.last(CHANNEL).startswith("You said: [Ann] again.")
            after = await http.scrape()
    finally:
        await harness.stop()

    def grew(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    errors = "memorybot_platform_api_errors_total"
    assert grew(errors, platform="discord", status="429") == 1
    assert grew(errors, platform="discord", status="503") == 1
    assert grew(errors, platform="discord") == 2
    assert grew("memorybot_platform_api_retries_total", platform="discord") == 1
    assert grew("memorybot_turns_total", platform="discord", outcome="answered") == 2
    assert grew("memorybot_time_to_first_token_seconds_count", platform="discord") == 2


async def test_slack_api_errors_and_the_retries_of_slack_sdk_are_counted(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    # users.info is rate-limited once (slack_sdk retries it); the status line is refused
    # for good, as Slack answers a token without the scope: 200 with ok false.
    slack.fail_next("users.info", ApiFault(status=429, headers={"Retry-After": "0"}))
    slack.disable("assistant.threads.setStatus", "missing_scope")
    async with running(slack, fake_openai, settings={"metrics_port": 0}) as bot:
        ts = await bot.mention("hello there")
        assert (await bot.answer("C0GENERAL", ts)).startswith("You said: [Ann] hello there")
        async with serving(registry=metrics_of(bot.parts).registry) as http:
            scrape = await http.scrape()
    errors = "memorybot_platform_api_errors_total"
    assert scrape.value(errors, platform="slack", status="429") == 1
    refused = len(slack.called("assistant.threads.setStatus"))
    assert refused >= 1
    assert scrape.value(errors, platform="slack", status="missing_scope") == refused
    assert scrape.value("memorybot_platform_api_retries_total", platform="slack") == 1
    assert scrape.value("memorybot_turns_total", platform="slack", outcome="answered") == 1


class HeldSink(Recorder):
    """Stops the turn at its first words (holding its thread and model slot) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.streaming = asyncio.Event()
        self.release = asyncio.Event()

    async def delta(self, text: str) -> None:
        self.streaming.set()
        await self.release.wait()
        await super().delta(text)


async def _until(check: Callable[[], Awaitable[Scrape | None]], within: float = 30.0) -> Scrape:
    """Scrape until `check` finds what it waits for (a probe's loop, not a timing)."""
    async with asyncio.timeout(within):
        while True:
            found = await check()
            if found is not None:
                return found
            await asyncio.sleep(0.01)


async def test_a_turn_resumed_by_a_click_is_counted_as_a_turn(tmp_path: Path) -> None:
    @function_tool(needs_approval=True)
    async def delete_ticket(ticket: str) -> str:
        """Delete a ticket.

        Args:
            ticket: The ticket's ID.
        """
        return f"Ticket {ticket} deleted."

    async with FakeOpenAI(calling("delete_ticket", {"ticket": "T-1"})) as model:
        config = make_config(model, tmp_path / "memory.sqlite3", metrics_port=0)
        parts = await BotParts(config, tools=[delete_ticket]).start()
        try:
            paused = await parts.core.handle(said("test:t", "ann", "delete T-1"), sink=Recorder())
            assert paused.approval is not None
            done = await parts.core.decide(
                paused.approval.approval_id,
                Decision.APPROVE,
                user_id="ann",
                user_name="Ann",
                sink=Recorder(),
            )
            assert done.text == "The tool said: Ticket T-1 deleted."
            async with serving(registry=metrics_of(parts).registry) as http:
                scrape = await http.scrape()
        finally:
            await parts.close()
    turns = "memorybot_turns_total"
    assert scrape.value(turns, platform="test", outcome="approval") == 1
    assert scrape.value(turns, platform="test", outcome="answered") == 1
    assert scrape.value("memorybot_turn_duration_seconds_count", platform="test") == 2
    assert scrape.value("memorybot_time_to_first_token_seconds_count", platform="test") == 1
    assert scrape.value("memorybot_active_turns") == 0
