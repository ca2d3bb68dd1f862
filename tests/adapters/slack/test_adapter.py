"""The Slack adapter end to end: real slack-bolt and slack_sdk against a fake Slack on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.slack import SlackAdapter, create
from adapters.slack.settings import SlackSettings
from adapters.slack.text import to_mrkdwn
from bot.adapter import SHUTTING_DOWN
from bot.config import ConfigError
from bot.texts import GENERIC
from tests.fakes.openai_server import FakeOpenAI, Fault, user_texts
from tests.fakes.slack_server import BOT_USER, TEAM, ApiFault, FakeSlack, Posted
from tests.support.faults import WHERES, Where, inject_bug
from tests.support.parts import BotParts, make_config
from tests.support.slack import (
    ANN,
    BEN,
    CHANNEL,
    DM,
    SECRET,
    Harness,
    running,
    signed_headers,
    slack_settings,
    thread_key,
)

# ----- conversations -----------------------------------------------------------------------


async def test_a_mention_opens_a_thread_and_is_answered_there(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("hello there")
        answer = await bot.answer(CHANNEL, ts)
        assert answer == "You said: [Ann] hello there. Before that: nothing."
        assert slack.bot_messages(CHANNEL, None) == []  # nothing top-level in the channel
        status = slack.called("assistant.threads.setStatus")[0]
        assert status == {"channel_id": CHANNEL, "thread_ts": ts, "status": "is thinking…"}
        start = slack.called("chat.startStream")[0]
        assert start["recipient_user_id"] == ANN
        assert start["recipient_team_id"] == TEAM
        assert slack.called("chat.stopStream")
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 2


async def test_follow_ups_in_the_thread_need_no_mention_and_remember(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("my name is Ann")
        await bot.answer(CHANNEL, ts)
        await bot.say("what is my name?", thread_ts=ts)
        answer = await bot.answer(CHANNEL, ts, count=2)
        assert answer == "You said: [Ann] what is my name?. Before that: [Ann] my name is Ann."


async def test_a_thread_without_the_bot_is_left_alone(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        root = await bot.say("people talking")
        await bot.say("among themselves", thread_ts=root)
        await slack.wait_for(lambda: slack.called("conversations.replies"))
        await bot.say("no mention at top level")
        await asyncio.sleep(0.2)
        assert [m for m in slack.messages if m.user == BOT_USER] == []
        assert fake_openai.requests == []


async def test_two_threads_keep_separate_memories(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        first = await bot.mention("apples")
        await bot.answer(CHANNEL, first)
        second = await bot.mention("bananas")
        await bot.answer(CHANNEL, second)
        await bot.say("and?", thread_ts=first)
        answer = await bot.answer(CHANNEL, first, count=2)
        assert "apples" in answer
        assert "bananas" not in answer


async def test_dms_share_one_memory_and_a_dm_thread_has_its_own(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        await bot.say("I like tea", channel=DM)
        await bot.answer(DM, None)
        second = await bot.say("what do I like?", channel=DM)
        answer = await bot.answer(DM, None, count=2)
        assert answer == "You said: [Ann] what do I like?. Before that: [Ann] I like tea."
        await bot.say("in a thread now", channel=DM, thread_ts=second)
        threaded = await bot.answer(DM, second)
        assert threaded == "You said: [Ann] in a thread now. Before that: nothing."
        assert await bot.parts.store.count_items(thread_key(DM, "dm")) == 4
        assert await bot.parts.store.count_items(thread_key(DM, second)) == 2


async def test_channel_scope_shares_one_memory_across_a_channel_s_threads(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai, settings={"memory_scope": "channel"}) as bot:
        first = await bot.mention("apples")
        await bot.answer(CHANNEL, first)
        second = await bot.mention("and bananas")
        answer = await bot.answer(CHANNEL, second)
        assert "apples" in answer  # another thread of the same channel, one memory
        assert await bot.parts.store.count_items(thread_key(CHANNEL, "channel")) == 4


async def test_user_scope_follows_a_person_from_a_dm_into_a_channel(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai, settings={"memory_scope": "user"}) as bot:
        await bot.say("I like tea", channel=DM)
        await bot.answer(DM, None)
        ts = await bot.mention("what do I like?")
        assert "I like tea" in await bot.answer(CHANNEL, ts)
        assert await bot.parts.store.count_items(f"slack:user:{ANN}") == 4


async def test_memory_survives_a_restart(
    slack: FakeSlack, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    db = tmp_path / "slack.sqlite3"
    async with running(slack, fake_openai, db) as bot:
        ts = await bot.mention("remember the number 7")
        await bot.answer(CHANNEL, ts)
    async with running(slack, fake_openai, db) as restarted:
        # A fresh process knows the thread only from Slack: no mention needed still.
        await restarted.say("what number?", thread_ts=ts)
        answer = await restarted.answer(CHANNEL, ts, count=2)
        assert "remember the number 7" in answer


# ----- commands ----------------------------------------------------------------------------


# ----- delivery ----------------------------------------------------------------------------


async def test_a_redelivered_event_gets_one_reply_and_one_stored_turn(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        ts = slack.new_ts()
        text = f"<@{BOT_USER}> only once"
        mention = {"type": "app_mention", "user": ANN, "text": text, "ts": ts, "channel": CHANNEL}
        as_message = bot.message_event(text, ts=ts)
        await bot.send_event(mention, event_id="EvSAME")
        await bot.send_event(mention, event_id="EvSAME", retry=1)
        await bot.send_event(as_message, event_id="EvOTHER")
        await bot.answer(CHANNEL, ts)
        await asyncio.sleep(0.2)
        assert len(slack.bot_messages(CHANNEL, ts)) == 1
        assert len(fake_openai.requests) == 1
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 2


async def test_streamed_text_equals_the_model_output(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.chunk_chars = 3
    fake_openai.chunk_delay = 0.005
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("tell me a **long** story about a river")
        answer = await bot.answer(CHANNEL, ts)
        expected = "You said: [Ann] tell me a **long** story about a river. Before that: nothing."
        assert answer == expected  # Markdown stays Markdown: Slack renders it when streamed
        assert len(slack.called("chat.appendStream")) >= 1
        assert slack.called("chat.postMessage") == []


@pytest.mark.parametrize("how", ["disabled", "unavailable"])
async def test_fallback_posts_and_updates(
    slack: FakeSlack, fake_openai: FakeOpenAI, how: str
) -> None:
    fake_openai.chunk_chars = 3
    if how == "unavailable":
        slack.disable("chat.startStream")
    async with running(slack, fake_openai, streaming=how == "unavailable") as bot:
        ts = await bot.mention("tell me **something** long please")
        replies = await slack.wait_for_replies(CHANNEL, ts)
        await slack.wait_for(lambda: not replies[0].text.endswith("…"))
        expected = "You said: [Ann] tell me **something** long please. Before that: nothing."
        assert replies[0].text == to_mrkdwn(expected)
        assert "*something*" in replies[0].text
        assert len(slack.called("chat.postMessage")) == 1
        assert slack.called("chat.update")
        assert slack.called("chat.appendStream") == []
        if how == "unavailable":
            await bot.say("again", thread_ts=ts)
            await bot.answer(CHANNEL, ts, count=2)
            assert len(slack.called("chat.startStream")) == 1  # learnt not to try again


async def test_a_long_answer_is_split_without_breaking_code(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    code = "\n".join(f"line_{i} = {i}" for i in range(40))
    fake_openai.responder = lambda _messages: f"Here:\n```python\n{code}\n```\nDone."
    async with running(slack, fake_openai, max_chars=200) as bot:
        ts = await bot.mention("code please")
        await slack.wait_for(lambda: "Done." in slack.thread_text(CHANNEL, ts))
        messages = slack.bot_messages(CHANNEL, ts)
        assert len(messages) > 1
        for message in messages:
            assert len(message.text) <= 200
            assert message.text.count("```") % 2 == 0
        joined = slack.thread_text(CHANNEL, ts)
        assert all(f"line_{i} = {i}" in joined for i in range(40))


async def test_a_429_is_retried_and_the_reply_still_arrives(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    slack.fail_next("chat.startStream", ApiFault(status=429, headers={"Retry-After": "0"}))
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("hi")
        answer = await bot.answer(CHANNEL, ts)
        assert answer == "You said: [Ann] hi. Before that: nothing."
        assert len(slack.called("chat.startStream")) == 2


async def test_a_model_error_shows_a_friendly_message_and_keeps_history(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("first")
        await bot.answer(CHANNEL, ts)
        before = await bot.parts.store.read_items(thread_key(CHANNEL, ts))
        fake_openai.fail_next(Fault(status=500))
        await bot.say("this fails", thread_ts=ts)
        failed = await bot.answer(CHANNEL, ts, count=2)
        assert failed.startswith(":warning: ")
        assert "fake error" not in failed
        assert await bot.parts.store.read_items(thread_key(CHANNEL, ts)) == before


def shown_as_finished(message: Posted, *, marks: tuple[str, ...]) -> list[str]:
    """The versions of `message` people saw as finished (no longer streaming) that carry none
    of `marks` (the error line, " …" for an answer still being written)."""
    return [
        text
        for text, streaming in message.versions
        if not streaming and not any(mark in text for mark in marks)
    ]


async def test_a_turn_failing_after_streaming_began_never_shows_the_partial_as_finished(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.chunk_chars = 3
    fake_openai.chunk_delay = 0.01
    async with running(slack, fake_openai) as bot:
        fake_openai.fail_next(Fault(break_after=8))
        ts = await bot.mention("tell me a long story")
        await slack.wait_for(
            lambda: (
                any(not m.streaming for m in slack.bot_messages(CHANNEL, ts))
                and slack.bot_messages(CHANNEL, ts)[-1].text.startswith(":warning: ")
            )
        )
        (message,) = slack.bot_messages(CHANNEL, ts)
        streamed = [text for text, streaming in message.versions if streaming and text]
        assert streamed  # the answer had begun to show
        assert shown_as_finished(message, marks=(":warning: ", " …")) == []
        assert message.text.startswith(":warning: ")  # the failure, and nothing else, stays
        assert "You said" not in message.text
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 0


async def test_ignores_itself_other_bots_and_people_not_allowed(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai, allowed_users=frozenset({ANN})) as bot:
        own = bot.message_event("echo", channel=DM, user=BOT_USER)
        other_bot = {**bot.message_event("beep", channel=DM, user=""), "bot_id": "B0OTHER"}
        other_bot.pop("user")
        await bot.send_event(own)
        await bot.send_event(other_bot)
        await bot.say("hello", channel=DM, user=BEN)
        await asyncio.sleep(0.2)
        assert fake_openai.requests == []
        await bot.say("hello", channel=DM, user=ANN)
        await bot.answer(DM, None, count=2)  # the first is the bot's own "echo"
        assert len(fake_openai.requests) == 1


# ----- several Socket Mode connections ------------------------------------------------------


async def answered_once(
    bot: Harness, fake_openai: FakeOpenAI, threads: list[str], *, settle: float = 0.2
) -> None:
    """Every thread got exactly one answer, from one model call each, and nothing else came."""
    for ts in threads:
        await bot.answer(CHANNEL, ts)
    await asyncio.sleep(settle)  # room for a second answer, were one coming
    assert [len(bot.slack.bot_messages(CHANNEL, ts)) for ts in threads] == [1] * len(threads)
    assert len(fake_openai.requests) == len(threads)
    for ts in threads:
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 2


async def test_events_spread_over_two_connections_are_each_answered_once(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai, socket_connections=2) as bot:
        opened = [c for c in slack.calls if c.method == "apps.connections.open"]
        assert [c.token for c in opened] == ["xapp-test", "xapp-test"]
        assert sorted(c.number for c in slack.connections) == [1, 2]  # two URLs, two sockets
        threads = [await bot.mention(f"question {i}") for i in range(6)]
        await answered_once(bot, fake_openai, threads)
        assert sorted(slack.delivered_on.values()) == [1, 1, 1, 2, 2, 2]
        assert slack.acked_on == slack.delivered_on  # each acked on the connection it came on
    await slack.wait_for(lambda: not slack.connections, within=2)  # shutdown closed both


async def test_a_retry_landing_on_the_other_connection_is_answered_once(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai, socket_connections=2) as bot:
        ts = slack.new_ts()
        text = f"<@{BOT_USER}> only once"
        slack.record_user_message(CHANNEL, text, ANN, ts)
        event = {"type": "app_mention", "user": ANN, "text": text, "ts": ts, "channel": CHANNEL}
        body = bot.event_body(event, event_id="EvRETRIED")
        # The retry goes out before the first delivery is acked: both are under way at once.
        first = await slack.deliver("events_api", body, via=1)
        retry = await slack.deliver(
            "events_api", body, retry_attempt=1, retry_reason="timeout", via=2
        )
        await slack.wait_ack(first)
        await slack.wait_ack(retry)
        await answered_once(bot, fake_openai, [ts])
        late = await slack.deliver("events_api", body, retry_attempt=2, via=1)
        await slack.wait_ack(late)
        await answered_once(bot, fake_openai, [ts])
        assert slack.acked_on == {first: 1, retry: 2, late: 1}
        assert len(slack.called("chat.startStream")) == 1


@pytest.mark.parametrize("reason", ["refresh_requested", "warning"])
async def test_a_refreshed_connection_loses_no_event_sent_meanwhile(
    slack: FakeSlack, fake_openai: FakeOpenAI, reason: str
) -> None:
    async with running(slack, fake_openai, socket_connections=2) as bot:
        reopened = slack.hold("apps.connections.open")  # the new connection takes its time
        await slack.disconnect(1, reason)
        during = [await bot.mention(f"during the refresh {i}") for i in range(4)]
        assert [c.number for c in slack.live()] == [2]  # 1 is draining
        reopened.set()
        await slack.wait_connections(2)  # slack_sdk reconnected by itself, on a new URL
        await slack.wait_for(lambda: sorted(c.number for c in slack.connections) == [2, 3])
        after = [await bot.mention(f"after the refresh {i}") for i in range(4)]
        await answered_once(bot, fake_openai, during + after)
        envelopes = list(slack.delivered_on)
        assert [slack.delivered_on[e] for e in envelopes[:4]] == [2, 2, 2, 2]
        assert sorted(slack.delivered_on[e] for e in envelopes[4:]) == [2, 2, 3, 3]
        assert slack.acked_on == slack.delivered_on


@pytest.mark.parametrize(("raw", "expected"), [("", 1), ("1", 1), ("4", 4), (" 10 ", 10)])
def test_socket_connections_setting(fake_openai: FakeOpenAI, raw: str, expected: int) -> None:
    environment = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}
    if raw:
        environment["SLACK_SOCKET_CONNECTIONS"] = raw
    config = make_config(fake_openai, environment=environment)
    assert SlackSettings.from_config(config).socket_connections == expected


@pytest.mark.parametrize("raw", ["0", "11", "two", "-1", "2.5"])
def test_socket_connections_outside_1_to_10_give_one_clear_line(
    fake_openai: FakeOpenAI, raw: str
) -> None:
    environment = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_APP_TOKEN": "xapp-1",
        "SLACK_SOCKET_CONNECTIONS": raw,
    }
    with pytest.raises(ConfigError) as raised:
        SlackSettings.from_config(make_config(fake_openai, environment=environment))
    message = str(raised.value)
    assert message.startswith("SLACK_SOCKET_CONNECTIONS must be a whole number from 1 to 10")
    assert "\n" not in message


# ----- HTTP mode ---------------------------------------------------------------------------


async def test_http_mode_verifies_signatures(slack: FakeSlack, fake_openai: FakeOpenAI) -> None:
    async with running(slack, fake_openai, signing_secret=SECRET) as bot:
        url = f"http://127.0.0.1:{bot.adapter.http_port}/slack/events"
        ts = slack.new_ts()
        event = {"type": "app_mention", "user": ANN, "text": f"<@{BOT_USER}> hi", "ts": ts}
        body = json.dumps(bot.event_body({**event, "channel": CHANNEL}))
        async with aiohttp.ClientSession() as http:
            forged = signed_headers(body, secret="wrong")
            async with http.post(url, data=body, headers=forged) as bad:
                assert bad.status == 401
            stale = signed_headers(body, timestamp=int(time.time()) - 600)
            async with http.post(url, data=body, headers=stale) as old:
                assert old.status == 401
            async with http.post(url, data=body, headers=signed_headers(body)) as good:
                assert good.status == 200
            retry = signed_headers(body, retry=1, reason="timeout")
            async with http.post(url, data=body, headers=retry) as again:
                assert again.status == 200
        await bot.answer(CHANNEL, ts)
        await asyncio.sleep(0.2)
        assert len(slack.bot_messages(CHANNEL, ts)) == 1
        assert len(fake_openai.requests) == 1


async def test_slack_port_0_listens_on_a_free_port_and_says_which(
    slack: FakeSlack, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    environment = {
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_PORT": "0",
    }
    settings = SlackSettings.from_config(make_config(fake_openai, environment=environment))
    assert settings.port == 0
    caplog.set_level(logging.INFO, logger="adapters.slack")
    async with running(slack, fake_openai, signing_secret=SECRET, port=settings.port) as bot:
        port = bot.adapter.http_port
        assert port is not None
        assert port > 0
        assert f"Listening for Slack on http://127.0.0.1:{port}/slack/events" in caplog.messages
        ts = await bot.mention("hi")
        assert await bot.answer(CHANNEL, ts) == "You said: [Ann] hi. Before that: nothing."


# ----- start-up ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "Set SLACK_APP_TOKEN"),
        ({"SLACK_BOT_TOKEN": "xapp-1", "SLACK_APP_TOKEN": "xoxb-1"}, "must be the Bot User"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-2"}, "starting with xapp-"),
    ],
)
async def test_missing_or_wrong_tokens_give_one_clear_line(
    fake_openai: FakeOpenAI, settings: dict[str, str], expected: str
) -> None:
    parts = await BotParts(make_config(fake_openai, environment=settings)).start()
    try:
        with pytest.raises(ConfigError) as raised:
            create(parts.core, parts.config, {})
        assert expected in str(raised.value)
        assert "\n" not in str(raised.value)
    finally:
        await parts.close()


async def test_create_picks_the_mode_from_the_tokens(fake_openai: FakeOpenAI) -> None:
    both = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1", "SLACK_SIGNING_SECRET": "s"}
    config = make_config(fake_openai, environment=both)
    http = make_config(fake_openai, environment={**both, "SLACK_APP_TOKEN": ""})
    parts = await BotParts(config).start()
    try:
        assert create(parts.core, config, {}).socket_mode
        assert not create(parts.core, http, {}).socket_mode
    finally:
        await parts.close()


async def test_a_rejected_bot_token_is_a_config_error(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    slack.disable("auth.test", "invalid_auth")
    parts = await BotParts(make_config(fake_openai)).start()
    adapter = SlackAdapter(parts.core, slack_settings(bot_token="xoxb-bad"), base_url=slack.api_url)
    try:
        with pytest.raises(ConfigError, match="Slack rejected SLACK_BOT_TOKEN"):
            await adapter.run()
    finally:
        await adapter.close(grace=1.0)
        await parts.close()


async def test_web_api_calls_share_one_http_session_closed_at_shutdown(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    harness = await Harness(slack, make_config(fake_openai)).start()
    try:
        session = harness.adapter.client.session
        ts = await harness.mention("hello")
        await harness.answer(CHANNEL, ts)
        await harness.say("and again", thread_ts=ts)
        await harness.answer(CHANNEL, ts, count=2)
        assert harness.adapter.client.session is session
    finally:
        await harness.close()
    connections = {call.connection for call in slack.calls}
    assert len(slack.calls) >= 8
    # slack_sdk would otherwise open (and close) a session, so a connection, for every call.
    assert len(connections) <= len(slack.calls) // 2
    assert isinstance(session, aiohttp.ClientSession)
    assert session.closed


async def test_slack_errors_while_answering_fall_back_and_still_deliver(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    slack.fail_next("chat.stopStream", ApiFault(error="msg_too_long"))
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("hi")
        await slack.wait_for(lambda: slack.called("chat.update"))
        answer = await bot.answer(CHANNEL, ts)
        assert answer == to_mrkdwn("You said: [Ann] hi. Before that: nothing.")

        slack.fail_next("chat.postMessage", ApiFault(error="ratelimited"))
        await bot.say("again", channel=DM)
        answer = await bot.answer(DM, None)
        assert answer.startswith("You said: [Ann] again.")


async def test_an_answer_slack_will_not_take_gets_a_friendly_line(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    slack.disable("chat.startStream")
    for method in ("chat.postMessage", "chat.update"):  # every try at the answer, not a notice
        slack.refuse(method, "msg_too_long", when=lambda body: "You said" in body.get("text", ""))
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("hi")
        answer = await bot.answer(CHANNEL, ts)
        assert answer == "Sorry, Slack did not accept my answer. Please try again in a moment."
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 2


async def test_close_lets_an_answer_under_way_finish(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.latency = 0.3
    harness = await Harness(slack, make_config(fake_openai)).start()
    try:
        ts = await harness.mention("slow one")
        await asyncio.wait_for(fake_openai.request_seen.wait(), 5)
    finally:
        await harness.close()
    assert slack.thread_text(CHANNEL, ts) == "You said: [Ann] slow one. Before that: nothing."


@pytest.mark.parametrize("when", ["thinking", "streaming"])
async def test_a_turn_cut_off_at_shutdown_says_so(
    slack: FakeSlack, fake_openai: FakeOpenAI, when: str
) -> None:
    fake_openai.chunk_chars = 2
    fake_openai.chunk_delay = 0.05
    if when == "thinking":
        fake_openai.latency = 30.0  # the model has not answered when the bot stops
    harness = await Harness(slack, make_config(fake_openai)).start()
    try:
        ts = await harness.mention("a long story, please")
        if when == "thinking":
            await slack.wait_for(lambda: slack.statuses.get((CHANNEL, ts)) == "is thinking…")
        else:
            await slack.wait_for(lambda: slack.called("chat.appendStream"))
        await harness.parts.core.drain(grace=0.01)
        assert await harness.parts.store.count_items(thread_key(CHANNEL, ts)) == 0
    finally:
        await harness.close()  # lets the adapter's listeners finish, as shutting down does
    (message,) = slack.bot_messages(CHANNEL, ts)
    assert message.text == SHUTTING_DOWN
    assert not message.streaming
    assert slack.statuses == {}


async def test_other_bots_are_answered_when_configured(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai, reply_to_bots=True) as bot:
        other = bot.message_event("beep", channel=DM, user="")
        other.pop("user")
        other.update(bot_id="B0OTHER", subtype="bot_message", username="Robo")
        await bot.send_event(other)
        answer = await bot.answer(DM, None)
        assert answer == "You said: [Robo] beep. Before that: nothing."


async def test_a_socket_drop_mid_stream_completes_the_reply_and_reconnects(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.chunk_chars = 3
    fake_openai.chunk_delay = 0.01
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("a long answer, please")
        await slack.wait_for(lambda: bool(slack.called("chat.startStream")))
        await slack.sockets[-1].close()  # Slack rotates Socket Mode connections like this
        answer = await bot.answer(CHANNEL, ts)
        assert answer == "You said: [Ann] a long answer, please. Before that: nothing."
        await asyncio.wait_for(slack.connected.wait(), 15)
        fake_openai.chunk_delay = 0.0
        await bot.say("still there?", thread_ts=ts)
        second = await bot.answer(CHANNEL, ts, count=2)
        assert "Before that: [Ann] a long answer, please." in second
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 4


async def test_bursts_of_429_and_5xx_while_streaming_still_deliver_once(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.chunk_chars = 3
    fake_openai.chunk_delay = 0.005
    slack.fail_next(
        "chat.appendStream",
        ApiFault(429, {"Retry-After": "0"}),
        ApiFault(429, {"Retry-After": "0"}),
        ApiFault(503, error="service_unavailable"),
    )
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("through the storm")
        expected = "You said: [Ann] through the storm. Before that: nothing."
        # The stream is stopped first and then edited into the whole answer.
        await slack.wait_for(lambda: slack.thread_text(CHANNEL, ts) == expected)
        (message,) = slack.bot_messages(CHANNEL, ts)
        # Stopped, the stream said it went on; only the whole answer stood as finished.
        assert set(shown_as_finished(message, marks=(" …",))) == {expected}
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 2


# ----- one error path ------------------------------------------------------------------------


async def one_failure(
    bot: Harness, caplog: pytest.LogCaptureFixture, handle: Callable[..., Awaitable[Any]]
) -> logging.LogRecord:
    """Mention the bot while the core's `handle` is `handle`, and return the one ERROR record
    that reports the listener's failure (a second one would fail the test)."""
    real = bot.parts.core.handle
    setattr(bot.parts.core, "handle", handle)  # noqa: B010 (a method replaced for one call)
    try:
        with caplog.at_level(logging.INFO):
            await bot.mention("hello")
            for _ in range(500):
                if any(r.levelno >= logging.ERROR for r in caplog.records):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # room for a second report, which must not come
    finally:
        setattr(bot.parts.core, "handle", real)  # noqa: B010
    (failure,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failure.name == "adapters.slack.adapter"
    return failure


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_a_failing_listener_is_reported_once_through_the_app_s_error_handler(
    slack: FakeSlack, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    options: dict[str, Any] = {"signing_secret": SECRET} if mode == "http" else {}
    async with running(slack, fake_openai, **options) as bot:
        failure = await one_failure(bot, caplog, broken)
        assert failure.getMessage() == (
            "A Slack listener failed on a request (event_callback): RuntimeError: boom"
        )
        assert failure.exc_info is not None
        assert str(failure.exc_info[1]) == "boom"
        ts = await bot.mention("still there?")  # the bot keeps serving
        assert "still there?" in await bot.answer(CHANNEL, ts)


async def test_a_slack_error_escaping_a_listener_is_reported_by_its_code(
    slack: FakeSlack, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    slack.disable("chat.meMessage", "not_in_channel")
    async with running(slack, fake_openai) as bot:

        async def refused(*args: Any, **kwargs: Any) -> Any:
            return await bot.adapter.client.chat_meMessage(channel=CHANNEL, text="hi")

        failure = await one_failure(bot, caplog, refused)
        assert failure.getMessage() == (
            "A Slack API call failed on a request (event_callback): not_in_channel"
        )
        assert failure.exc_info is None  # the code says it all


# ----- one owner per decision ----------------------------------------------------------------


@pytest.mark.parametrize("where", WHERES)
async def test_an_unexpected_fault_shows_the_friendly_line_and_clears_the_status(
    slack: FakeSlack, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, where: Where
) -> None:
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("remember this")
        await bot.answer(CHANNEL, ts)
        inject_bug(monkeypatch, where)
        await bot.say("and this?", thread_ts=ts)
        friendly = f":warning: {GENERIC}"
        await slack.wait_for(lambda: slack.bot_messages(CHANNEL, ts)[-1].text == friendly)
        assert len(slack.bot_messages(CHANNEL, ts)) == 2
        assert slack.statuses == {}  # "is thinking…" is not left up
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 2


async def test_commands_and_slowed_down_messages_show_no_thinking_status(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("hello")
        await bot.answer(CHANNEL, ts)
        before = len(slack.called("assistant.threads.setStatus"))
        await bot.say("!history", thread_ts=ts)
        await bot.ephemerals(1)
        await bot.mention("help", thread_ts=ts)
        await bot.ephemerals(2)
        assert len(slack.called("assistant.threads.setStatus")) == before


async def test_what_people_type_reaches_the_model_and_memory_decoded(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        # Slack's own encoding of `is 3 < 5 && 7 > 2? see <link> #general`.
        ts = await bot.mention(
            "is 3 &lt; 5 &amp;&amp; 7 &gt; 2? see <https://example.com/?a=1&amp;b=2|the docs> "
            "in <#C0GENERAL|general>"
        )
        answer = await bot.answer(CHANNEL, ts)
        typed = "is 3 < 5 && 7 > 2? see the docs (https://example.com/?a=1&b=2) in #general"
        assert user_texts(fake_openai.requests[-1].messages) == [f"[Ann] {typed}"]
        assert answer == f"You said: [Ann] {typed}. Before that: nothing."  # streamed Markdown
        await bot.say("!history", thread_ts=ts)
        history = (await bot.ephemerals(1))[0]["text"]
        assert "is 3 &lt; 5 &amp;&amp; 7 &gt; 2?" in history  # shown as typed, escaped once
        assert "&amp;lt;" not in history


async def test_a_mention_and_its_message_twin_log_no_redelivery(
    slack: FakeSlack, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(slack, fake_openai) as bot:
        ts = slack.new_ts()
        text = f"<@{BOT_USER}> hello"
        mention = {"type": "app_mention", "user": ANN, "text": text, "ts": ts, "channel": CHANNEL}
        # Slack sends both for every mention in a channel the bot is in.
        await bot.send_event(mention)
        await bot.send_event(bot.message_event(text, ts=ts))
        await bot.answer(CHANNEL, ts)
        await asyncio.sleep(0.1)
        loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
        assert not [line for line in loud if "redeliver" in line or "again" in line]
        await bot.send_event(mention, retry=1)
        await asyncio.sleep(0.1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "Slack delivered an event again (retry 1, timeout)" in warnings
    assert len(slack.bot_messages(CHANNEL, ts)) == 1
