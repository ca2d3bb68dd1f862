"""Commands on Slack: typed in a thread, message shortcuts and slash commands."""

from __future__ import annotations

from bot.messages import IncomingMessage
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import FakeSlack
from tests.support.slack import ANN, CHANNEL, running, thread_key


async def test_commands_typed_in_a_thread_are_ephemeral(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("one")
        await bot.answer(CHANNEL, ts)
        await bot.say("two", thread_ts=ts)
        await bot.answer(CHANNEL, ts, count=2)

        await bot.say("!history", thread_ts=ts)
        history = (await bot.ephemerals(1))[0]
        assert history["thread_ts"] == ts
        assert history["user"] == ANN
        assert "one" in history["text"]
        assert "two" in history["text"]

        await bot.say("!undo", thread_ts=ts)
        undo = (await bot.ephemerals(2))[1]
        assert undo["text"].startswith("Undone")
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 2

        await bot.say("!memory", thread_ts=ts)
        memory = (await bot.ephemerals(3))[2]
        assert "word for word" in memory["text"]

        await bot.mention("forget", thread_ts=ts)
        forget = (await bot.ephemerals(4))[3]
        assert forget["text"].startswith("Done: I forgot")
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 0
        assert len(slack.bot_messages(CHANNEL, ts)) == 2  # commands posted nothing public
        assert len(fake_openai.requests) == 2


async def test_message_shortcuts_act_on_the_thread(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        ts = await bot.mention("keep this")
        reply = (await slack.wait_for_replies(CHANNEL, ts))[0]

        envelope = await slack.deliver("interactive", bot.shortcut("show_history", reply.ts, ts))
        await slack.wait_ack(envelope)
        shown = (await bot.ephemerals(1))[0]
        assert "keep this" in shown["text"]
        assert shown["thread_ts"] == ts

        envelope = await slack.deliver("interactive", bot.shortcut("forget_thread", ts, ts))
        await slack.wait_ack(envelope)
        forgot = (await bot.ephemerals(2))[1]
        assert forgot["text"].startswith("Done: I forgot")
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 0


async def test_slash_commands_act_on_the_channel_and_answer_ephemerally(
    slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    async with running(slack, fake_openai) as bot:
        await bot.parts.core.handle(
            IncomingMessage("slack", thread_key(CHANNEL, "channel"), ANN, "Ann", "channel note")
        )
        envelope = await slack.deliver("slash_commands", bot.slash("/history"))
        ack = await slack.wait_ack(envelope)
        assert "payload" not in ack or not ack["payload"]
        await slack.wait_for(lambda: slack.responses)
        assert slack.responses[0]["response_type"] == "ephemeral"
        assert "channel note" in slack.responses[0]["text"]

        envelope = await slack.deliver("slash_commands", bot.slash("/forget"))
        await slack.wait_for(lambda: len(slack.responses) >= 2)
        assert slack.responses[1]["text"].startswith("Done: I forgot")
        assert await bot.parts.store.count_items(thread_key(CHANNEL, "channel")) == 0

        await slack.deliver("slash_commands", bot.slash("/help"))
        await slack.wait_for(lambda: len(slack.responses) >= 3)
        assert "/forget" in slack.responses[2]["text"]
