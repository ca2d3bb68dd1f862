"""The core end to end: real `Runner`, real `openai` client, fake model server, real SQLite."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.agent import build_model
from bot.messages import IncomingMessage, Reply, ReplyKind, Surface
from bot.storage import Author
from bot.texts import GENERIC
from tests.fakes.openai_server import FakeOpenAI, Fault, message_text, user_texts
from tests.support.faults import WHERES, Where, inject_bug
from tests.support.items import msg, tool_call, tool_output
from tests.support.parts import BotParts, make_config
from tests.support.sinks import Recorder

CHAT = Surface(max_chars=2000)


async def say(
    parts: BotParts,
    text: str,
    *,
    thread: str = "console:t",
    author: str = "Ann",
    sink: Any = None,
    surface: Surface = CHAT,
) -> Reply:
    message = IncomingMessage("console", thread, f"id-{author}", author, text)
    return await parts.core.handle(message, surface, sink)


async def test_remembers_earlier_turns(bot: BotParts, fake_openai: FakeOpenAI) -> None:
    first = await say(bot, "my name is Ann")
    assert first.kind is ReplyKind.ANSWER
    second = await say(bot, "what is my name?")
    assert second.text == "You said: [Ann] what is my name?. Before that: [Ann] my name is Ann."
    sent = fake_openai.requests[-1].messages
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert message_text(sent[2]) == first.text


async def test_threads_keep_separate_memories(bot: BotParts, fake_openai: FakeOpenAI) -> None:
    await say(bot, "apples", thread="discord:1:100")
    await say(bot, "bananas", thread="discord:1:200")
    reply = await say(bot, "and?", thread="discord:1:100")
    assert "apples" in reply.text
    assert "bananas" not in reply.text
    assert user_texts(fake_openai.requests[-1].messages) == ["[Ann] apples", "[Ann] and?"]


async def test_memory_survives_a_restart(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    config = make_config(fake_openai, tmp_path / "restart.sqlite3")
    parts = await BotParts(config).start()
    await say(parts, "remember the number 7")
    await parts.close()
    restarted = await BotParts(config).start()
    try:
        reply = await say(restarted, "what number?")
        assert "remember the number 7" in reply.text
    finally:
        await restarted.close()


async def test_streams_deltas_that_add_up_to_the_answer(bot: BotParts) -> None:
    sink = Recorder()
    reply = await say(bot, "tell me a story about a long river", sink=sink)
    assert sink.started_turns == 1
    assert len(sink.deltas) > 3
    assert sink.text == reply.text


async def test_a_failing_sink_does_not_lose_the_answer(bot: BotParts) -> None:
    reply = await say(bot, "hi", sink=Recorder(fail_with=ConnectionError("platform went away")))
    assert reply.kind is ReplyKind.ANSWER
    assert await bot.store.count_items("console:t") == 2


@pytest.mark.parametrize(
    ("text", "kind"),
    [("/help", ReplyKind.COMMAND), ("/forgt", ReplyKind.COMMAND), ("   ", ReplyKind.NOTICE)],
)
async def test_no_turn_is_started_for_commands_or_notices(
    bot: BotParts, text: str, kind: ReplyKind
) -> None:
    sink = Recorder()
    reply = await say(bot, text, sink=sink)
    assert reply.kind is kind
    assert sink.started_turns == 0
    assert sink.deltas == []


async def test_a_rate_limited_message_starts_no_turn(fake_openai: FakeOpenAI) -> None:
    parts = await BotParts(make_config(fake_openai, rate_limit_per_minute=1)).start()
    try:
        await say(parts, "one")
        sink = Recorder()
        reply = await say(parts, "two", sink=sink)
    finally:
        await parts.close()
    assert reply.kind is ReplyKind.NOTICE
    assert sink.started_turns == 0


@pytest.mark.parametrize("where", WHERES)
async def test_an_unexpected_fault_is_a_friendly_error_reply(
    bot: BotParts, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, where: Where
) -> None:
    await say(bot, "remember this")
    inject_bug(monkeypatch, where)
    with caplog.at_level(logging.ERROR, logger="bot.core"):
        reply = await say(bot, "hello")
    assert reply.kind is ReplyKind.ERROR
    assert reply.text == GENERIC
    assert "KeyError" not in reply.text
    assert any(r.exc_info for r in caplog.records)
    assert await bot.store.count_items("console:t") == 2


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=500),
        Fault(status=429, headers={"Retry-After": "0"}),
        # Refused as too long twice: the turn's own retry with less, too.
        [Fault(status=400, error_code="context_length_exceeded")] * 2,
        Fault(body="{this is not json"),
        Fault(break_after=2),
    ],
    ids=["500", "429", "context", "bad-json", "broken-stream"],
)
async def test_a_failed_turn_leaves_history_exactly_as_it_was(
    bot: BotParts, fake_openai: FakeOpenAI, fault: Fault | list[Fault]
) -> None:
    await say(bot, "first")
    before = await bot.store.read_items("console:t")
    fake_openai.fail_next(*(fault if isinstance(fault, list) else [fault]))
    reply = await say(bot, "this one fails")
    assert reply.kind is ReplyKind.ERROR
    assert "Traceback" not in reply.text
    assert "sk-test" not in reply.text
    assert "fake error" not in reply.text  # raw exception text never reaches the chat
    assert await bot.store.read_items("console:t") == before
    after = await say(bot, "next")
    assert user_texts(fake_openai.requests[-1].messages) == ["[Ann] first", "[Ann] next"]
    assert after.kind is ReplyKind.ANSWER


async def test_a_context_overflow_is_retried_once_with_less(
    bot: BotParts, fake_openai: FakeOpenAI
) -> None:
    await say(bot, "remember 7")
    fake_openai.fail_next(Fault(status=400, error_code="context_length_exceeded"))
    reply = await say(bot, "and now?")
    assert reply.kind is ReplyKind.ANSWER
    assert len(fake_openai.requests) == 3
    assert await bot.store.count_items("console:t") == 4  # the retried turn is stored once


async def test_rate_limit_is_retried_by_the_client(fake_openai: FakeOpenAI) -> None:
    parts = await BotParts(make_config(fake_openai, model_retries=2)).start()
    try:
        fake_openai.fail_next(Fault(status=429, headers={"Retry-After": "0"}))
        reply = await say(parts, "hello")
        assert reply.kind is ReplyKind.ANSWER
        assert len(fake_openai.requests) == 2
    finally:
        await parts.close()


async def test_stalled_stream_hits_the_model_timeout(fake_openai: FakeOpenAI) -> None:
    parts = await BotParts(make_config(fake_openai, model_timeout=0.5)).start()
    try:
        fake_openai.fail_next(Fault(stall_after=1))
        reply = await say(parts, "hello")
        assert reply.kind is ReplyKind.ERROR
        assert "too long" in reply.text
        assert await parts.store.count_items("console:t") == 0
    finally:
        await parts.close()


async def test_one_turn_at_a_time_per_thread_but_threads_overlap(
    bot: BotParts, fake_openai: FakeOpenAI
) -> None:
    fake_openai.latency = 0.3
    await asyncio.gather(
        say(bot, "one", thread="console:same"),
        say(bot, "two", thread="console:same"),
    )
    first, second = fake_openai.requests
    assert first.finished is not None
    assert second.started >= first.finished
    # The second turn saw the first one's whole exchange.
    assert len(user_texts(second.messages)) == 2
    assert fake_openai.max_in_flight == 1

    await asyncio.gather(say(bot, "a", thread="console:x"), say(bot, "b", thread="console:y"))
    assert fake_openai.max_in_flight == 2


async def test_global_cap_on_concurrent_model_calls(fake_openai: FakeOpenAI) -> None:
    parts = await BotParts(make_config(fake_openai, max_concurrency=1)).start()
    try:
        fake_openai.latency = 0.2
        await asyncio.gather(*(say(parts, "hi", thread=f"console:{n}") for n in range(3)))
        assert fake_openai.max_in_flight == 1
    finally:
        await parts.close()


async def test_the_model_knows_who_said_what(bot: BotParts, fake_openai: FakeOpenAI) -> None:
    await say(bot, "I like tea", author="Ann")
    await say(bot, "I like coffee", author="Bob")
    assert user_texts(fake_openai.requests[-1].messages) == [
        "[Ann] I like tea",
        "[Bob] I like coffee",
    ]
    system = fake_openai.requests[-1].messages[0]
    assert "square brackets" in message_text(system)
    history = await say(bot, "/history")
    assert "Ann: I like tea" in history.text
    assert "Bob: I like coffee" in history.text
    assert "Ann: [Ann]" not in history.text  # the stored prefix is not shown twice


async def test_history_window_is_bounded_without_splitting_tool_calls(
    fake_openai: FakeOpenAI,
) -> None:
    parts = await BotParts(make_config(fake_openai)).start()
    try:
        await parts.store.append(
            "console:t",
            [
                msg("user", "[Ann] old question"),
                # Far more than the default budget holds, so the window must start after it.
                msg("assistant", "old answer " + "z " * 40_000),
                msg("user", "[Ann] look it up"),
                tool_call("call_1"),
                tool_output("call_1"),
                msg("assistant", "it is 42"),
            ],
            author=Author("id-Ann", "Ann"),
        )
        await say(parts, "thanks")
        sent = fake_openai.requests[-1].messages
        # The window holds whole exchanges only: it starts at a user message and keeps the
        # call with its output.
        roles = [m["role"] for m in sent]
        assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
        call = sent[2]["tool_calls"][0]
        assert call["id"] == sent[3]["tool_call_id"] == "call_1"
        assert "old question" not in str(sent)
    finally:
        await parts.close()


async def test_responses_api_works_too(fake_openai: FakeOpenAI) -> None:
    parts = await BotParts(make_config(fake_openai, model_api="responses")).start()
    try:
        sink = Recorder()
        await say(parts, "first")
        reply = await say(parts, "second", sink=sink)
        assert reply.text == "You said: [Ann] second. Before that: [Ann] first."
        assert sink.text == reply.text
        assert fake_openai.requests[-1].api == "responses"
    finally:
        await parts.close()


async def test_commands_never_reach_the_model(bot: BotParts, fake_openai: FakeOpenAI) -> None:
    await say(bot, "hello")
    calls = len(fake_openai.requests)
    for command in ["/help", "/history", "!history", "/undo", "/forget", "/forgt", "/forget all"]:
        reply = await say(bot, command)
        assert reply.kind is ReplyKind.COMMAND
        assert reply.ephemeral
    assert len(fake_openai.requests) == calls


async def test_forget_says_how_much_it_forgot(bot: BotParts) -> None:
    assert "nothing to forget" in (await say(bot, "/forget")).text
    await say(bot, "one")
    await say(bot, "two")
    assert (await say(bot, "/forget")).text == "Done: I forgot 4 messages from this thread."
    assert await bot.store.count_items("console:t") == 0


async def test_undo_removes_only_the_last_exchange(bot: BotParts, fake_openai: FakeOpenAI) -> None:
    assert "nothing to undo" in (await say(bot, "/undo")).text
    await say(bot, "keep this")
    await say(bot, "drop this")
    reply = await say(bot, "/undo")
    assert "Ann's message “drop this”" in reply.text
    assert "my reply" in reply.text
    await say(bot, "and now?")
    assert user_texts(fake_openai.requests[-1].messages) == ["[Ann] keep this", "[Ann] and now?"]


async def test_history_pages_fit_the_surface(bot: BotParts) -> None:
    for n in range(15):
        await say(bot, f"message number {n} " + "x" * 100)
    page_1 = await say(bot, "/history", surface=Surface(max_chars=1000))
    assert len(page_1.text) <= 1000
    assert "page 1 of 2" in page_1.text
    assert "/history 2" in page_1.text
    assert "message number 14" in page_1.text
    page_2 = await say(bot, "/history 2", surface=Surface(max_chars=1000))
    assert "message number 0 " in page_2.text
    assert "message number 14" not in page_2.text
    # Past the last page: said so, not page 1 again (which reads as if nothing were older).
    past = await say(bot, "/history 5", surface=Surface(max_chars=1000))
    assert past.kind is ReplyKind.COMMAND
    assert past.text == "There is no page 5: this thread's history has 2 pages."
    whole = await say(bot, "/history", surface=Surface(max_chars=None))
    assert "x" * 100 in whole.text


async def test_bad_input_gets_a_clear_answer(bot: BotParts, fake_openai: FakeOpenAI) -> None:
    empty = await say(bot, "   ")
    assert empty.kind is ReplyKind.NOTICE
    assert "/help" in empty.text
    assert "don't know /nope" in (await say(bot, "/nope")).text
    assert (await say(bot, "/history zero")).text == "Usage: /history [page]"
    assert fake_openai.requests == []
    chat = await say(bot, "/usr/bin is a folder")  # not a command: goes to the model
    assert chat.kind is ReplyKind.ANSWER


async def test_huge_messages_are_cut_with_a_notice(bot: BotParts, fake_openai: FakeOpenAI) -> None:
    reply = await say(bot, "y" * 1_048_576)  # 1 MB
    assert "cut to its first 16,000 characters" in reply.text
    assert len(user_texts(fake_openai.requests[-1].messages)[0]) < 16_100


async def test_drain_cancels_slow_turns_and_stores_nothing(
    bot: BotParts, fake_openai: FakeOpenAI
) -> None:
    fake_openai.latency = 5.0
    turn = asyncio.create_task(say(bot, "slow"))
    await asyncio.wait_for(fake_openai.request_seen.wait(), 5)
    await bot.core.drain(grace=0.1)
    assert turn.cancelled() or isinstance(turn.exception(), asyncio.CancelledError)
    assert await bot.store.count_items("console:t") == 0
    late = await say(bot, "anyone there?")
    assert late.kind is ReplyKind.NOTICE
    assert "restarting" in late.text


async def test_a_redelivered_message_gets_one_answer_and_one_stored_turn(
    bot: BotParts, fake_openai: FakeOpenAI
) -> None:
    message = IncomingMessage("slack", "slack:T:C:1.0", "U1", "Ann", "hello", message_id="Ev1")
    assert not bot.core.already_handled("slack", "Ev1")
    sinks = Recorder(), Recorder()
    first, again = await asyncio.gather(
        bot.core.handle(message, CHAT, sinks[0]), bot.core.handle(message, CHAT, sinks[1])
    )
    assert sorted(r.kind.value for r in (first, again)) == ["answer", "repeat"]
    assert [r.shown for r in (first, again)].count(False) == 1
    assert sorted(s.started_turns for s in sinks) == [0, 1]
    assert bot.core.already_handled("slack", "Ev1")
    assert not bot.core.already_handled("discord", "Ev1")
    assert await bot.store.count_items("slack:T:C:1.0") == 2
    assert len(fake_openai.requests) == 1


async def test_a_command_said_to_the_bot_by_name_needs_no_prefix(bot: BotParts) -> None:
    await say(bot, "hello")
    named = IncomingMessage("slack", "console:t", "U1", "Ann", "history", mentioned=True)
    reply = await bot.core.handle(named, CHAT)
    assert reply.kind is ReplyKind.COMMAND
    assert "hello" in reply.text
    unnamed = await say(bot, "history")
    assert unnamed.kind is ReplyKind.ANSWER


async def test_people_sending_too_fast_are_asked_to_slow_down(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    parts = await BotParts(make_config(fake_openai, rate_limit_per_minute=2)).start()
    try:
        replies = [await say(parts, f"message {i}") for i in range(3)]
        other = await say(parts, "hi", author="Bob")
    finally:
        await parts.close()
    assert [r.kind for r in replies] == [ReplyKind.ANSWER, ReplyKind.ANSWER, ReplyKind.NOTICE]
    assert "wait" in replies[2].text
    assert other.kind is ReplyKind.ANSWER
    assert len(fake_openai.requests) == 3


async def test_your_own_sdk_code_can_use_a_thread_s_memory(
    bot: BotParts, fake_openai: FakeOpenAI
) -> None:
    """`store.session(id)` is the SDK `Session` the README offers for scripts and notebooks."""
    from agents import Agent, RunConfig, Runner

    await say(bot, "the launch code is 4711", thread="slack:T:C:1.0")
    agent = Agent(name="helper", model=build_model(bot.config, bot.client))
    session = bot.store.session("slack:T:C:1.0")
    result = await Runner.run(
        agent,
        "what was the launch code?",
        session=session,
        run_config=RunConfig(tracing_disabled=True),
    )
    sent = fake_openai.requests[-1].messages
    assert any("4711" in message_text(m) for m in sent)  # the bot's memory reached the model
    assert result.final_output.startswith("You said: what was the launch code?")
    assert await bot.store.count_items("slack:T:C:1.0") == 4  # and the exchange was kept
    used = IncomingMessage("slack", "slack:T:C:1.0", "U1", "Ann", "")
    history = await bot.core.run_command(used, "history")
    assert "what was the launch code?" in history.text


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("thread", ["slack:T:C:1.0", "slack:T:C:2.0", "slack:T:D:dm"]),
        ("channel", ["slack:T:C:channel", "slack:T:C:channel", "slack:T:D:dm"]),
        ("user", ["slack:user:U1", "slack:user:U1", "slack:user:U1"]),
    ],
)
def test_memory_scopes_map_messages_to_the_right_memory(scope: str, expected: list[str]) -> None:
    messages = [
        IncomingMessage("slack", "slack:T:C:1.0", "U1", "Ann", "", channel_key="slack:T:C:channel"),
        IncomingMessage("slack", "slack:T:C:2.0", "U1", "Ann", "", channel_key="slack:T:C:channel"),
        IncomingMessage("slack", "slack:T:D:dm", "U1", "Ann", ""),  # a DM is its own channel
    ]
    assert [m.session_id(scope) for m in messages] == expected
