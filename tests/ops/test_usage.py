"""Usage: every turn stores what the model reported, `/usage` and `python -m bot usage` add it
up, and the daily budget refuses a person past it until midnight UTC (time injected). Adding
it up in the store itself is tests/storage/test_usage.py."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.messages import IncomingMessage, Reply, ReplyKind, Surface
from bot.storage import SQLiteStore, Usage
from tests.fakes.openai_server import FakeOpenAI, count_tokens
from tests.support.parts import BotParts, make_config
from tests.support.usage import populate

SURFACE = Surface(max_chars=2000)


class Clock:
    """The time the bot believes it is; tests move it instead of sleeping."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def say(
    parts: BotParts, text: str, *, user: str = "ann", thread: str = "discord:1:10"
) -> Reply:
    platform = thread.split(":")[0]
    message = IncomingMessage(platform, thread, user, user.title(), text)
    return await parts.core.handle(message, SURFACE)


async def test_every_turn_stores_what_the_model_reported(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    parts = await BotParts(make_config(fake_openai, tmp_path / "m.sqlite3")).start()
    try:
        answers = [
            await say(parts, "hello there, I am Ann"),
            await say(parts, "and I am Bob", user="bob"),
            await say(parts, "what did Bob say?"),
        ]
        assert all(reply.kind is ReplyKind.ANSWER for reply in answers)
        dump = await parts.store.dump_thread("discord:1:10")
    finally:
        await parts.close()
    costed = [m for m in dump.messages if m.usage is not None]
    assert [m.asked_by for m in costed] == ["ann", "bob", "ann"]
    for message, request, reply in zip(costed, fake_openai.completed, answers, strict=True):
        assert message.usage is not None
        assert message.usage.model == "fake-model"
        assert message.usage.input_tokens == request.prompt_tokens > 0
        assert message.usage.cached_tokens == request.cached_tokens
        assert message.usage.output_tokens == count_tokens(reply.text)
    # The fake caches a shared prompt prefix as OpenAI does (1,024 tokens at least): short
    # turns share none, so nothing was reported cached.
    assert all(m.usage is not None and m.usage.cached_tokens == 0 for m in costed)


async def test_usage_command_shows_the_thread_and_the_person(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    clock = Clock(datetime.now(UTC))
    config = make_config(fake_openai, tmp_path / "m.sqlite3", daily_tokens_per_user=100_000)
    parts = await BotParts(config, clock=clock).start()
    try:
        await say(parts, "first question")
        await say(parts, "a question in another thread", thread="discord:1:20")
        await say(parts, "Bob's question", user="bob")
        await say(parts, "/undo", user="bob")  # undone, but it was paid for
        ann = sum(m.input_tokens + m.output_tokens for m in await _costs(parts, "ann"))
        everyone = await parts.store.thread_usage("discord:1:10")
        reply = await say(parts, "/usage")
    finally:
        await parts.close()
    assert reply.kind is ReplyKind.COMMAND
    assert f"This thread: {everyone.tokens:,} tokens over 2 model calls" in reply.text
    assert f"You, across every thread here: {ann:,} tokens today, {ann:,} this month" in reply.text
    assert f"Your daily budget: {ann:,} of 100,000 tokens used" in reply.text
    assert len(fake_openai.completed) == 3  # commands never reach the model


async def _costs(parts: BotParts, user: str) -> list[Usage]:
    found = []
    for session in await parts.store.list_sessions():
        dump = await parts.store.dump_thread(session.session_id)
        found += [m.usage for m in dump.messages if m.usage and m.asked_by == user]
    return found


async def test_the_daily_budget_refuses_then_resets_at_midnight_utc(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    clock = Clock(datetime.now(UTC))
    config = make_config(fake_openai, tmp_path / "m.sqlite3", daily_tokens_per_user=60)
    parts = await BotParts(config, clock=clock).start()
    try:
        first = await say(parts, "a question that costs a few tokens " * 3)
        assert first.kind is ReplyKind.ANSWER
        spent = (await parts.store.thread_usage("discord:1:10")).tokens
        assert spent >= 60, "the first turn must use up the budget for this test to mean much"
        refused = await say(parts, "another question")
        assert refused.kind is ReplyKind.NOTICE
        left = datetime.combine(clock.now.date() + timedelta(days=1), datetime.min.time(), UTC)
        assert refused.text.startswith(
            "You've used today's budget of 60 tokens; it resets at 00:00 UTC"
        )
        hours, minutes = divmod(int((left - clock.now).total_seconds() // 60) + 1, 60)
        assert f"(in {hours} h {minutes} min)" in refused.text or hours == 0
        assert len(fake_openai.completed) == 1, "a refused message never reaches the model"
        # Commands still work, and someone else still gets answers.
        usage = await say(parts, "/usage")
        assert usage.kind is ReplyKind.COMMAND
        assert f"Your daily budget: {spent:,} of 60 tokens used" in usage.text
        assert (await say(parts, "/history")).kind is ReplyKind.COMMAND
        assert (await say(parts, "hi, I'm Bob", user="bob")).kind is ReplyKind.ANSWER
        # The refused message was not stored.
        assert "another question" not in str(await parts.store.read_items("discord:1:10"))
        # One second past midnight UTC: a new day, a new budget.
        clock.now = left + timedelta(seconds=1)
        again = await say(parts, "another question")
        assert again.kind is ReplyKind.ANSWER
        # And the turn just stored counts at once, without waiting for the store to be read.
        assert (await say(parts, "and one more")).kind is ReplyKind.NOTICE
    finally:
        await parts.close()


async def test_usage_shows_what_a_turn_that_crossed_the_budget_really_used(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    config = make_config(fake_openai, tmp_path / "m.sqlite3", daily_tokens_per_user=60)
    parts = await BotParts(config, clock=Clock(datetime.now(UTC))).start()
    try:
        # Under the budget when it started, so it ran; it is finished even though it crosses it.
        await say(parts, "a question that costs a few tokens " * 3)
        spent = (await parts.store.thread_usage("discord:1:10")).tokens
        assert spent > 60, "the turn must overrun the budget for this test to mean anything"
        usage = await say(parts, "/usage")
    finally:
        await parts.close()
    assert usage.text.splitlines()[-1] == (
        f"Your daily budget: {spent:,} of 60 tokens used (over by {spent - 60:,}); "
        "it resets at 00:00 UTC."
    )


def _write_env(tmp_path: Path, db: Path) -> Path:
    env = tmp_path / "test.env"
    env.write_text(f"BOT_DB_PATH={db}\nOPENAI_API_KEY=sk-test-not-real\n")
    return env


async def _populated_file(path: Path) -> None:
    async with await SQLiteStore.open(path) as store:
        await populate(store)


def test_cli_prints_a_table_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    db = tmp_path / "memory.sqlite3"
    asyncio.run(_populated_file(db))
    env = _write_env(tmp_path, db)
    assert main(["--env-file", str(env), "usage", "--by", "user"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["USER", "CALLS", "INPUT", "CACHED", "OUTPUT", "TOTAL"]
    assert table[1].split() == ["discord:ann", "4", "7,500", "4,096", "750", "8,250"]
    assert table[4].split() == ["(summaries)", "1", "800", "0", "80", "880"]
    assert table[-1].split()[:3] == ["TOTAL", "(all", "time)"]
    assert table[-1].split()[-1] == f"{7700 + 8250 + 3300 + 880:,}"
    assert main(["--env-file", str(env), "usage", "--by", "day", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == [
        "day",
        "calls",
        "input_tokens",
        "cached_tokens",
        "output_tokens",
        "total_tokens",
    ]
    assert [row[0] for row in rows[2:]] == ["2031-04-28", "2031-05-10", "2031-05-20"]
    since = ["usage", "--by", "thread", "--since", "2031-05-20", "--format", "csv"]
    assert main(["--env-file", str(env), *since]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert {row[0]: int(row[5]) for row in rows[1:]} == {
        "slack:T1:C1:1.0": 7700,
        "discord:1:10": 7700,
        "discord:1:20": 550,
    }
    with pytest.raises(SystemExit):
        main(["--env-file", str(env), "usage", "--since", "last tuesday"])
    assert "is not a date like" in capsys.readouterr().err
