"""Long threads through the real openai client and Runner: budget, summaries, search, commands.

The fake model has a 16,000-token context, counts and reports tokens, refuses anything longer
with OpenAI's `context_length_exceeded`, summarises when asked and calls `search_thread` when a
question needs it (`tests/support/model.py`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agents import SQLiteSession

from bot.messages import IncomingMessage, Reply, ReplyKind, Surface
from tests.fakes.openai_server import (
    FakeOpenAI,
    Fault,
    RequestRecord,
    ToolCall,
    message_text,
    user_texts,
)
from tests.support.model import is_summary_request, searching, summarizing
from tests.support.parts import BotParts, make_config
from tests.support.stores import density_of, summary_of

CONTEXT = 16_000
FACT = "The launch code is ZX-4471, keep it safe."
QUESTION = "What was the launch code from the very start?"
CHAT = Surface(max_chars=4000)


def brief(messages: list[dict[str, Any]]) -> str:
    """A model that answers shortly, as chat answers mostly are."""
    said = user_texts(messages)
    return f"Noted: {said[-1][:60]}" if said else "Hello."


def paste(turn: int) -> str:
    """A 10,000-character log paste, different every time."""
    lines = [
        f"{turn:04d}-{n:03d} INFO worker={n % 7} handled request in {n * 3 % 97} ms"
        for n in range(200)
    ]
    return "\n".join(lines)[:10_000]


def conversation(turns: int) -> list[str]:
    texts = [FACT]
    for turn in range(1, turns - 1):
        texts.append(
            f"Here is the log, please look:\n{paste(turn)}"
            if turn % 3 == 0
            else f"ok, next point {turn}"
        )
    texts.append(QUESTION)
    return texts


async def say(parts: BotParts, text: str, thread: str = "console:long") -> Reply:
    reply = await parts.core.handle(IncomingMessage("console", thread, "u1", "Ann", text), CHAT)
    await parts.core.idle()  # people take longer to type than a summary takes to write
    return reply


def turn_requests(fake: FakeOpenAI) -> list[RequestRecord]:
    return [r for r in fake.requests if not is_summary_request(r.messages)]


def request_size(record: RequestRecord) -> int:
    limit = record.body.get("max_tokens") or record.body.get("max_completion_tokens") or 0
    return record.prompt_tokens + int(limit)


@pytest.fixture
async def long_bot(tmp_path: Path) -> AsyncIterator[tuple[BotParts, FakeOpenAI]]:
    async with FakeOpenAI(summarizing(brief), context_window=CONTEXT) as fake:
        config = make_config(
            fake, tmp_path / "long.sqlite3", context_tokens=CONTEXT, max_output_tokens=1_000
        )
        parts = await BotParts(config).start()
        yield parts, fake
        await parts.close()


async def test_a_150_turn_thread_with_pastes_stays_in_budget_and_keeps_its_facts(
    long_bot: tuple[BotParts, FakeOpenAI],
) -> None:
    parts, fake = long_bot
    replies = [await say(parts, text) for text in conversation(150)]
    assert [r.kind for r in replies] == [ReplyKind.ANSWER] * 150
    assert max(request_size(r) for r in fake.requests) <= CONTEXT  # never refused as too long
    summaries = [r for r in fake.requests if is_summary_request(r.messages)]
    assert 1 <= len(summaries) <= 30
    last = turn_requests(fake)[-1]
    assert "ZX-4471" in message_text(last.messages[0])  # the summary, in the instructions
    assert FACT not in str(last.messages[1:])  # the first message itself is long gone


async def test_most_requests_repeat_the_previous_one_as_their_prefix(
    long_bot: tuple[BotParts, FakeOpenAI],
) -> None:
    parts, fake = long_bot
    for text in conversation(90):
        await say(parts, text)
    turns = turn_requests(fake)
    extended = sum(
        1
        for before, after in itertools.pairwise(turns)
        if after.messages[: len(before.messages)] == before.messages
    )
    assert extended / (len(turns) - 1) >= 0.8
    assert sum(r.cached_tokens for r in turns) / sum(r.prompt_tokens for r in turns) >= 0.6


async def test_the_search_tool_finds_what_the_summary_dropped(tmp_path: Path) -> None:
    def forgetful(messages: list[dict[str, Any]]) -> str:
        return "They discussed logs." if is_summary_request(messages) else brief(messages)

    async with FakeOpenAI(
        searching(QUESTION, "launch code", forgetful), context_window=CONTEXT
    ) as fake:
        config = make_config(fake, tmp_path / "s.sqlite3", context_tokens=CONTEXT)
        parts = await BotParts(config).start()
        try:
            await say(parts, "the launch code is QQ-0000 here", thread="console:other")
            for text in conversation(60):
                reply = await say(parts, text)
            assert "ZX-4471" in reply.text
            assert "QQ-0000" not in reply.text  # another thread's words are never found
            tool_output = fake.requests[-1].messages[-1]
            assert tool_output["role"] == "tool"
            assert "ZX-4471" in message_text(tool_output)
            # The tool call is part of the turn: stored with it, shown compactly, undone with it.
            history = await parts.core.handle(
                IncomingMessage("console", "console:long", "u1", "Ann", "/history"), CHAT
            )
            assert "(used the tool search_thread)" in history.text
            before = await parts.store.count_items("console:long")
            await parts.core.handle(
                IncomingMessage("console", "console:long", "u1", "Ann", "/undo"), CHAT
            )
            assert await parts.store.count_items("console:long") == before - 4
        finally:
            await parts.close()


async def test_a_failing_summary_never_fails_a_turn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(messages: list[dict[str, Any]]) -> str | Fault:
        return Fault(status=500) if is_summary_request(messages) else brief(messages)

    async with FakeOpenAI(broken, context_window=CONTEXT) as fake:
        config = make_config(fake, tmp_path / "f.sqlite3", context_tokens=CONTEXT)
        parts = await BotParts(config).start()
        try:
            with caplog.at_level(logging.WARNING, logger="bot.memory.summary"):
                replies = [await say(parts, text) for text in conversation(45)]
            assert all(r.kind is ReplyKind.ANSWER for r in replies)
            assert max(request_size(r) for r in fake.requests) <= CONTEXT
            assert await summary_of(parts.store, "console:long") is None
            # Logged once, then retried only after a pause: not one failing call per turn.
            failures = [r for r in caplog.records if "Summarising" in r.getMessage()]
            assert len(failures) == 1
        finally:
            await parts.close()


async def test_an_over_long_request_is_retried_with_less_and_answered(tmp_path: Path) -> None:
    # The owner set a budget above the model's real context: the model refuses, the bot
    # squeezes and retries on its own.
    async with FakeOpenAI(summarizing(brief), context_window=6_000) as fake:
        config = make_config(fake, tmp_path / "o.sqlite3", context_tokens=CONTEXT)
        parts = await BotParts(config).start()
        try:
            replies = [await say(parts, text) for text in conversation(30)]
            assert all(r.kind is ReplyKind.ANSWER for r in replies)
            refused = [r for r in fake.requests if request_size(r) > 6_000]
            assert refused  # the situation really arose
        finally:
            await parts.close()


async def test_memory_forget_undo_and_history_with_a_summary(
    long_bot: tuple[BotParts, FakeOpenAI],
) -> None:
    parts, _ = long_bot

    async def command(text: str) -> str:
        reply = await parts.core.handle(
            IncomingMessage("console", "console:long", "u1", "Ann", text), CHAT
        )
        assert reply.kind is ReplyKind.COMMAND
        return reply.text

    assert "no memory" in await command("/memory")
    await say(parts, "hello")
    assert "word for word" in await command("/memory")
    for text in conversation(40):
        await say(parts, text)
    shown = await command("/memory")
    assert "ZX-4471" in shown
    assert "I carry as this summary" in shown
    assert len(shown) <= CHAT.max_chars  # type: ignore[operator]
    # /history still shows everything verbatim, oldest page included.
    pages = int((await command("/history")).split("page 1 of ")[1].split(",")[0])
    shown_pages = [await command(f"/history {page}") for page in range(1, pages + 1)]
    assert "hello" in shown_pages[-1]
    assert any(FACT in page for page in shown_pages)
    await command("/undo")
    summary = await summary_of(parts.store, "console:long")
    assert summary is not None  # the undone exchange was never summarised
    await command("/forget")
    assert await summary_of(parts.store, "console:long") is None
    assert "no memory" in await command("/memory")


async def test_summary_and_index_survive_a_restart(tmp_path: Path) -> None:
    async with FakeOpenAI(summarizing(brief), context_window=CONTEXT) as fake:
        config = make_config(fake, tmp_path / "r.sqlite3", context_tokens=CONTEXT)
        parts = await BotParts(config).start()
        for text in conversation(40):
            await say(parts, text)
        before = await summary_of(parts.store, "console:long")
        await parts.close()
        restarted = await BotParts(config).start()
        try:
            assert before is not None
            assert await summary_of(restarted.store, "console:long") == before
            assert await restarted.store.search("console:long", "ZX-4471", limit=3)
            await say(restarted, "still there?")
            assert "ZX-4471" in message_text(fake.requests[-1].messages[0])
        finally:
            await restarted.close()
        # The SDK's own session still reads the bot's file, summaries and index beside it.
        sdk = SQLiteSession("console:long", tmp_path / "r.sqlite3")
        try:
            items = await sdk.get_items()
            assert message_text(items[0]) == f"[Ann] {FACT}"  # type: ignore[arg-type]
            assert len(items) == 82
        finally:
            sdk.close()


async def test_every_turn_stores_the_usage_the_model_reported(
    long_bot: tuple[BotParts, FakeOpenAI],
) -> None:
    parts, fake = long_bot
    await say(parts, "hello there")
    await say(parts, "and again")
    measured = await density_of(parts.store, "console:long")
    assert measured is not None
    assert 0.1 < measured < 0.4  # English text in JSON: about a quarter of a token per char
    assert fake.requests[-1].prompt_tokens > 0


def test_tool_call_responder_shapes() -> None:
    assert ToolCall("search_thread", {"query": "x"}).arguments == {"query": "x"}
