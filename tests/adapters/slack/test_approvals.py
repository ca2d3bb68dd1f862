"""Tools and approvals in Slack: real slack-bolt and slack_sdk against the fake Slack.

The fake model calls `lookup_ticket` when asked about a ticket, and answers with what the tool
returned (or what the bot told it instead). Clicks are `block_actions` payloads built from the
buttons on the fake's stored message, so a button that is gone cannot be clicked.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from agents import FunctionTool, function_tool
from slack_sdk.web.async_client import AsyncWebClient

from adapters.inflight import InFlight
from adapters.slack.approvals import SlackApprovals
from adapters.slack.delivery import SlackDelivery
from adapters.slack.lookups import SlackLookups
from adapters.slack.prompts import (
    APPROVE,
    REJECT,
    Click,
    PromptAddress,
    decided_line,
    ended_blocks,
    prompt_blocks,
    prompt_markdown,
    read_click,
)
from adapters.slack.rules import AccessPolicy
from adapters.slack.stream import AnswerWriter, Destination, StatusSink
from adapters.streaming import ChannelThrottle
from bot.adapter import SHUTTING_DOWN, ApprovalEnding, ApprovalRequest, Decision
from tests.fakes.openai_server import (
    FakeOpenAI,
    Fault,
    ToolCall,
    message_text,
    reply_from_history,
)
from tests.fakes.slack_server import TEAM, ApiFault, FakeSlack, Posted
from tests.support.parts import make_config
from tests.support.slack import ANN, BEN, CHANNEL, DM, SECRET, Harness, running, thread_key

ANSWER = "Done: Ticket T-1: the printer is on fire."


def ticket_tool(ran: list[str], *, needs_approval: bool = True) -> FunctionTool:
    @function_tool(needs_approval=needs_approval)
    def lookup_ticket(ticket_id: str) -> str:
        """Look up a support ticket by its ID."""
        ran.append(ticket_id)
        return f"Ticket {ticket_id}: the printer is on fire."

    return lookup_ticket


def ticket_model(messages: list[dict[str, Any]]) -> str | ToolCall | Fault:
    """Calls `lookup_ticket` for a question about a ticket, then answers with its result."""
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return f"Done: {message_text(last)}"
    if last.get("role") == "user" and "ticket" in message_text(last):
        return ToolCall("lookup_ticket", {"ticket_id": "T-1"})
    return reply_from_history(messages)


def tool_result(fake_openai: FakeOpenAI) -> str:
    """What the model was told the tool returned, in its latest request."""
    last = fake_openai.requests[-1].messages[-1]
    assert last.get("role") == "tool"
    return message_text(last)


async def prompt_in(slack: FakeSlack, channel: str, thread_ts: str | None) -> Posted:
    """Wait for the bot's message with buttons in the thread."""

    def with_buttons() -> list[Posted]:
        return [m for m in slack.bot_messages(channel, thread_ts) if m.buttons()]

    await slack.wait_for(with_buttons)
    return with_buttons()[0]


async def addressed(bot: Harness, session_id: str) -> None:
    """Wait until the core knows where the thread's prompt is (the adapter tells it right
    after posting), so an expiry or cancellation can find it."""
    for _ in range(500):
        pending = await bot.parts.store.approval_in(session_id)
        if pending is not None and pending.address is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no prompt address recorded for {session_id}")


def ending(message: Posted) -> str:
    """The line an ended prompt shows under its text."""
    return " ".join(
        element.get("text", "")
        for block in message.blocks
        if block.get("type") == "context"
        for element in block.get("elements", [])
    )


def stored_kinds(items: list[Any]) -> list[str]:
    return [str(item.get("type") or item.get("role")) for item in items]


@pytest.fixture
def ran() -> list[str]:
    return []


# ----- a tool at work ----------------------------------------------------------------------


async def test_a_running_tool_shows_in_the_thread_status_then_the_answer_streams(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str]
) -> None:
    fake_openai.responder = ticket_model
    async with running(slack, fake_openai, tools=[ticket_tool(ran, needs_approval=False)]) as bot:
        ts = await bot.mention("what does ticket T-1 say?")
        assert await bot.answer(CHANNEL, ts) == ANSWER
        statuses = [c["status"] for c in slack.called("assistant.threads.setStatus")]
        assert statuses == ["is thinking…", "is using lookup_ticket…"]
        assert slack.statuses == {}  # the streamed answer took the status away
        assert slack.called("chat.startStream")
        assert ran == ["T-1"]
        items = await bot.parts.store.read_items(thread_key(CHANNEL, ts))
        assert stored_kinds(items) == ["user", "function_call", "function_call_output", "message"]


async def test_a_tool_status_set_under_a_streaming_answer_is_cleared_when_text_goes_on(
    slack: FakeSlack,
) -> None:
    # The fake model cannot write text and call a tool in one response; the sink can be
    # driven the way the core drives it for such a turn.
    client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
    dest = Destination(CHANNEL, "1700000000.000100", TEAM, ANN)
    writer = AnswerWriter(
        client, dest, throttle=ChannelThrottle(0.0), streaming=True, max_chars=3900, interval=0
    )

    async def set_status(status: str) -> bool:
        await client.assistant_threads_setStatus(
            channel_id=dest.channel, thread_ts=str(dest.thread_ts), status=status
        )
        return True

    sink = StatusSink(writer, set_status)
    key = (CHANNEL, "1700000000.000100")
    await sink.started()
    await sink.delta("Let me look. ")
    assert key not in slack.statuses  # Slack clears it when the answer is posted
    await sink.tool("lookup_ticket")
    assert slack.statuses[key] == "is using lookup_ticket…"
    assert sink.needs_clearing
    await sink.delta("Found it.")
    assert key not in slack.statuses
    assert not sink.needs_clearing


# ----- approvals ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_approve_runs_the_tool_and_the_answer_streams_into_the_thread(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str], mode: str
) -> None:
    fake_openai.responder = ticket_model
    options: dict[str, Any] = {"signing_secret": SECRET} if mode == "http" else {}
    async with running(slack, fake_openai, tools=[ticket_tool(ran)], **options) as bot:
        assert bot.adapter.socket_mode is (mode == "socket")
        ts = await bot.mention("what does ticket T-1 say?")
        prompt = await prompt_in(slack, CHANNEL, ts)
        approve, reject = prompt.buttons()
        assert (approve["action_id"], approve["style"]) == (APPROVE, "primary")
        assert (reject["action_id"], reject["style"]) == (REJECT, "danger")
        assert approve["value"] == reject["value"] != ""
        section = prompt.blocks[0]
        assert section["type"] == "section"
        assert section["text"]["type"] == "mrkdwn"
        assert "lookup_ticket" in section["text"]["text"]
        assert "lookup_ticket" in prompt.text  # the fallback for notifications
        assert ran == []
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 0

        await bot.click(CHANNEL, prompt.ts, APPROVE)
        assert await bot.answer(CHANNEL, ts, count=2) == ANSWER
        assert ran == ["T-1"]
        assert tool_result(fake_openai) == "Ticket T-1: the printer is on fire."
        assert prompt.buttons() == []
        assert ending(prompt) == "✅ Approved by Ann"
        assert "lookup_ticket" in prompt.blocks[0]["text"]["text"]  # the prompt keeps its text
        start = slack.called("chat.startStream")[-1]
        assert (start["thread_ts"], start["recipient_user_id"]) == (ts, ANN)
        items = await bot.parts.store.read_items(thread_key(CHANNEL, ts))
        assert stored_kinds(items) == ["user", "function_call", "function_call_output", "message"]
        assert slack.statuses == {}
        assert slack.ephemerals == []


async def test_a_turn_that_pauses_again_gets_a_new_prompt(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str]
) -> None:
    def two_tickets(messages: list[dict[str, Any]]) -> str | ToolCall | Fault:
        results = [message_text(m) for m in messages if m.get("role") == "tool"]
        if len(results) == 1:
            return ToolCall("lookup_ticket", {"ticket_id": "T-2"})
        return ticket_model(messages)

    fake_openai.responder = two_tickets
    async with running(slack, fake_openai, tools=[ticket_tool(ran)]) as bot:
        ts = await bot.mention("compare ticket T-1 with T-2")
        first = await prompt_in(slack, CHANNEL, ts)
        await bot.click(CHANNEL, first.ts, APPROVE)
        await slack.wait_for(lambda: ending(first) == "✅ Approved by Ann")
        second = await prompt_in(slack, CHANNEL, ts)
        assert second.ts != first.ts
        assert "T-2" in second.blocks[0]["text"]["text"]
        assert ran == ["T-1"]
        await bot.click(CHANNEL, second.ts, APPROVE)
        assert await bot.answer(CHANNEL, ts, count=3) == "Done: Ticket T-2: the printer is on fire."
        assert ran == ["T-1", "T-2"]
        assert ending(second) == "✅ Approved by Ann"
        items = await bot.parts.store.read_items(thread_key(CHANNEL, ts))
        assert stored_kinds(items) == [
            "user",
            "function_call",
            "function_call_output",
            "function_call",
            "function_call_output",
            "message",
        ]


async def test_reject_does_not_run_the_tool_and_the_model_is_told(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str]
) -> None:
    fake_openai.responder = ticket_model
    async with running(slack, fake_openai, tools=[ticket_tool(ran)]) as bot:
        ts = await bot.mention("what does ticket T-1 say?")
        prompt = await prompt_in(slack, CHANNEL, ts)
        await bot.click(CHANNEL, prompt.ts, REJECT)
        answer = await bot.answer(CHANNEL, ts, count=2)
        assert ran == []
        told = tool_result(fake_openai)
        assert "Ann rejected" in told
        assert answer == f"Done: {told}"
        assert prompt.buttons() == []
        assert ending(prompt) == "❌ Rejected by Ann"
        items = await bot.parts.store.read_items(thread_key(CHANNEL, ts))
        assert stored_kinds(items) == ["user", "function_call", "function_call_output", "message"]


@pytest.mark.parametrize("ephemeral_works", [True, False], ids=["postEphemeral", "response_url"])
async def test_a_click_by_someone_else_is_told_only_to_them_and_changes_nothing(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str], ephemeral_works: bool
) -> None:
    fake_openai.responder = ticket_model
    if not ephemeral_works:
        slack.disable("chat.postEphemeral", "user_not_in_channel")
    async with running(
        slack, fake_openai, settings={"approvers": "asker"}, tools=[ticket_tool(ran)]
    ) as bot:
        ts = await bot.mention("what does ticket T-1 say?")
        prompt = await prompt_in(slack, CHANNEL, ts)
        edits, requests = prompt.edits, len(fake_openai.requests)

        await bot.click(CHANNEL, prompt.ts, APPROVE, user=BEN)
        await slack.wait_for(lambda: slack.ephemerals)
        (notice,) = slack.ephemerals
        assert (notice.user, notice.channel, notice.thread_ts) == (BEN, CHANNEL, ts)
        assert notice.text == "Only Ann can approve or reject this."
        assert prompt.edits == edits
        assert len(prompt.buttons()) == 2
        assert ran == []
        assert len(fake_openai.requests) == requests
        assert len(slack.bot_messages(CHANNEL, ts)) == 1

        await bot.click(CHANNEL, prompt.ts, APPROVE, user=ANN)  # still Ann's to decide
        assert await bot.answer(CHANNEL, ts, count=2) == ANSWER


async def test_with_approvers_allowed_anyone_allowed_here_may_decide(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str]
) -> None:
    fake_openai.responder = ticket_model
    async with running(
        slack,
        fake_openai,
        settings={"approvers": "allowed"},
        tools=[ticket_tool(ran)],
        allowed_users=frozenset({ANN, BEN}),
    ) as bot:
        ts = await bot.mention("what does ticket T-1 say?")
        prompt = await prompt_in(slack, CHANNEL, ts)
        await bot.click(CHANNEL, prompt.ts, APPROVE, user="U0EVE")  # not on the allow-list
        await slack.wait_for(lambda: slack.ephemerals)
        assert slack.ephemerals[0].user == "U0EVE"
        assert len(prompt.buttons()) == 2
        await bot.click(CHANNEL, prompt.ts, APPROVE, user=BEN)
        assert await bot.answer(CHANNEL, ts, count=2) == ANSWER
        assert ending(prompt) == "✅ Approved by Ben"


async def test_a_resume_that_fails_before_any_tool_ran_keeps_the_buttons(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str]
) -> None:
    fake_openai.responder = ticket_model
    async with running(slack, fake_openai, tools=[ticket_tool(ran)]) as bot:
        ts = await bot.mention("what does ticket T-1 say?")
        prompt = await prompt_in(slack, CHANNEL, ts)
        fake_openai.fail_next(Fault(status=500))
        await bot.click(CHANNEL, prompt.ts, REJECT)  # the model, told, fails to answer
        await slack.wait_for(lambda: slack.ephemerals)
        (failed,) = slack.ephemerals
        assert failed.user == ANN
        assert "500" not in failed.text
        assert len(prompt.buttons()) == 2  # still pending: anyone may click again
        assert prompt.edits == 0
        assert len(slack.bot_messages(CHANNEL, ts)) == 1
        await slack.wait_for(lambda: slack.statuses == {})  # "is thinking…" does not stay
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 0

        await bot.click(CHANNEL, prompt.ts, APPROVE)
        assert await bot.answer(CHANNEL, ts, count=2) == ANSWER
        assert prompt.buttons() == []
        assert ran == ["T-1"]


async def test_a_resume_that_fails_after_the_tool_ran_settles_the_prompt(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str]
) -> None:
    fake_openai.responder = ticket_model
    async with running(slack, fake_openai, tools=[ticket_tool(ran)]) as bot:
        ts = await bot.mention("what does ticket T-1 say?")
        prompt = await prompt_in(slack, CHANNEL, ts)
        fake_openai.fail_next(Fault(status=500))
        await bot.click(CHANNEL, prompt.ts, APPROVE)
        answer = await bot.answer(CHANNEL, ts, count=2)
        assert "The tool did run" in answer  # so nobody approves it twice
        assert ran == ["T-1"]
        assert prompt.buttons() == []
        assert ending(prompt) == "✅ Approved by Ann"
        assert slack.ephemerals == []


async def test_a_resumed_turn_cut_off_at_shutdown_says_so_and_keeps_the_buttons(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str]
) -> None:
    fake_openai.responder = ticket_model
    harness = await Harness(slack, make_config(fake_openai), tools=[ticket_tool(ran)]).start()
    try:
        ts = await harness.mention("what does ticket T-1 say?")
        prompt = await prompt_in(slack, CHANNEL, ts)
        fake_openai.chunk_chars = 2
        fake_openai.chunk_delay = 0.05
        await harness.click(CHANNEL, prompt.ts, APPROVE)
        await slack.wait_for(lambda: slack.called("chat.appendStream"))
        await harness.parts.core.drain(grace=0.01)
        assert await harness.parts.store.count_items(thread_key(CHANNEL, ts)) == 0
    finally:
        await harness.close()  # lets the click's listener finish, as shutting down does
    shown = slack.bot_messages(CHANNEL, ts)
    assert [m.ts for m in shown[:-1]] == [prompt.ts]
    assert shown[-1].text == SHUTTING_DOWN
    assert len(prompt.buttons()) == 2  # still pending: it can be clicked again after the restart
    assert slack.statuses == {}


async def test_an_expired_request_is_marked_and_the_model_s_answer_posted(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str]
) -> None:
    fake_openai.responder = ticket_model
    async with running(slack, fake_openai, tools=[ticket_tool(ran)]) as bot:
        ts = await bot.mention("what does ticket T-1 say?")
        prompt = await prompt_in(slack, CHANNEL, ts)
        await addressed(bot, thread_key(CHANNEL, ts))
        later = datetime.now(UTC) + timedelta(days=1)
        assert await bot.parts.core.expire_approvals(now=later) == 1
        await slack.wait_for(lambda: ending(prompt) == "⌛ Expired — not run")
        assert prompt.buttons() == []
        answer = await bot.answer(CHANNEL, ts, count=2)
        told = tool_result(fake_openai)
        assert "Nobody approved" in told
        assert answer == f"Done: {told}"
        assert ran == []
        items = await bot.parts.store.read_items(thread_key(CHANNEL, ts))
        assert stored_kinds(items) == ["user", "function_call", "function_call_output", "message"]
        with pytest.raises(LookupError):  # nothing left to click
            await bot.click(CHANNEL, prompt.ts, APPROVE)


async def test_approve_after_a_restart(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str], tmp_path: Path
) -> None:
    fake_openai.responder = ticket_model
    db = tmp_path / "slack.sqlite3"
    tools = [ticket_tool(ran)]
    async with running(slack, fake_openai, db, tools=tools) as bot:
        ts = await bot.mention("what does ticket T-1 say?")
        prompt = await prompt_in(slack, CHANNEL, ts)
    async with running(slack, fake_openai, db, tools=tools) as restarted:
        await restarted.click(CHANNEL, prompt.ts, APPROVE)
        assert await restarted.answer(CHANNEL, ts, count=2) == ANSWER
        assert ran == ["T-1"]
        assert ending(prompt) == "✅ Approved by Ann"
        items = await restarted.parts.store.read_items(thread_key(CHANNEL, ts))
        assert stored_kinds(items) == ["user", "function_call", "function_call_output", "message"]


async def test_an_expiry_after_a_restart_still_finds_the_prompt(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str], tmp_path: Path
) -> None:
    fake_openai.responder = ticket_model
    db = tmp_path / "slack.sqlite3"
    async with running(slack, fake_openai, db, tools=[ticket_tool(ran)]) as bot:
        await bot.say("what does ticket T-1 say?", channel=DM)
        prompt = await prompt_in(slack, DM, None)
        await addressed(bot, thread_key(DM, "dm"))
    async with running(slack, fake_openai, db, tools=[ticket_tool(ran)]) as restarted:
        later = datetime.now(UTC) + timedelta(days=1)
        assert await restarted.parts.core.expire_approvals(now=later) == 1
        await slack.wait_for(lambda: ending(prompt) == "⌛ Expired — not run")
        answer = await restarted.answer(DM, None, count=2)  # top level, as in the DM
        assert answer.startswith("Done: Nobody approved")


async def test_a_new_message_while_pending_cancels_the_call_and_is_answered(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str]
) -> None:
    fake_openai.responder = ticket_model
    async with running(slack, fake_openai, tools=[ticket_tool(ran)]) as bot:
        ts = await bot.mention("what does ticket T-1 say?")
        prompt = await prompt_in(slack, CHANNEL, ts)
        await addressed(bot, thread_key(CHANNEL, ts))
        await bot.say("never mind, just say hi", thread_ts=ts)
        answer = await bot.answer(CHANNEL, ts, count=2)
        assert answer.startswith("You said: [Ann] never mind, just say hi.")
        await slack.wait_for(lambda: ending(prompt) == "Cancelled — a new message came in")
        assert prompt.buttons() == []
        assert ran == []
        items = await bot.parts.store.read_items(thread_key(CHANNEL, ts))
        assert stored_kinds(items) == [
            "user",
            "function_call",
            "function_call_output",
            "user",
            "message",
        ]


def prompt_posts(slack: FakeSlack) -> int:
    """Calls that tried to post a message carrying the buttons, answered or not."""
    return sum(1 for body in slack.called("chat.postMessage") if "actions" in str(body))


async def test_a_prompt_slack_refuses_once_is_tried_again(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str]
) -> None:
    fake_openai.responder = ticket_model
    # ok:false internal_error: "likely due to a transient issue on our end", says Slack's
    # chat.postMessage reference; slack_sdk retries no ok:false answer.
    slack.fail_next("chat.postMessage", ApiFault(error="internal_error"))
    async with running(slack, fake_openai, tools=[ticket_tool(ran)]) as bot:
        ts = await bot.mention("what does ticket T-1 say?")
        [prompt] = await slack.wait_for_replies(CHANNEL, ts)
        assert (prompt.text, len(prompt.buttons())) == (prompt.text, 2)
        assert "lookup_ticket" in prompt.text
        assert prompt_posts(slack) == 2
        await addressed(bot, thread_key(CHANNEL, ts))
        assert await bot.parts.store.count_items(thread_key(CHANNEL, ts)) == 0
        await bot.click(CHANNEL, prompt.ts, APPROVE)
        assert await bot.answer(CHANNEL, ts, count=2) == ANSWER
        assert ran == ["T-1"]


@pytest.mark.parametrize("refused", ["invalid_blocks", "the connection"])
async def test_a_prompt_slack_refuses_ends_the_turn_with_a_plain_line(
    slack: FakeSlack, fake_openai: FakeOpenAI, ran: list[str], refused: str
) -> None:
    fake_openai.responder = ticket_model

    def with_buttons(body: dict[str, Any]) -> bool:
        return "actions" in str(body.get("blocks"))

    # Slack answers ok:false invalid_blocks to any message carrying the buttons, posted or
    # edited in, and slack_sdk does not retry it; a connection dropped with no answer is
    # retried once by slack_sdk, then raised as aiohttp's error, not as Slack's.
    for method in ("chat.postMessage", "chat.update"):
        if refused == "invalid_blocks":
            slack.refuse(method, "invalid_blocks", with_buttons)
        else:
            slack.drop(method, with_buttons)
    async with running(slack, fake_openai, tools=[ticket_tool(ran)]) as bot:
        ts = await bot.mention("what does ticket T-1 say?")
        line = await bot.answer(CHANNEL, ts)
        assert line == (
            "I needed someone's OK to run lookup_ticket, but I couldn't show the Approve and "
            "Reject buttons here, so I didn't run it. An admin may need to check my "
            "permissions in this channel; then ask again."
        )
        assert prompt_posts(slack) == (2 if refused == "invalid_blocks" else 4)
        assert ran == []
        assert await bot.parts.store.approval_in(thread_key(CHANNEL, ts)) is None
        items = await bot.parts.store.read_items(thread_key(CHANNEL, ts))
        assert stored_kinds(items) == ["user", "function_call", "function_call_output"]
        assert "approval prompt could not be shown" in str(items[-1]["output"])


# ----- the pure parts ----------------------------------------------------------------------


def test_prompt_blocks_are_a_section_and_two_buttons_carrying_the_id() -> None:
    section, actions = prompt_blocks("run *it*?", "abc_123")
    assert section["text"] == {"type": "mrkdwn", "text": "run *it*?"}
    assert actions["type"] == "actions"
    assert [
        (b["action_id"], b["text"]["text"], b["style"], b["value"]) for b in actions["elements"]
    ] == [
        (APPROVE, "Approve", "primary", "abc_123"),
        (REJECT, "Reject", "danger", "abc_123"),
    ]
    assert [b["type"] for b in ended_blocks("run *it*?", "done")] == ["section", "context"]


def test_a_long_prompt_is_cut_to_fit_a_section() -> None:
    cut = prompt_markdown("&" * 10_000)
    assert cut.endswith("…")
    section, _ = prompt_blocks("x" * 5_000, "id")
    assert len(section["text"]["text"]) == 3_000


@pytest.mark.parametrize(
    ("decision", "name", "line"),
    [
        (Decision.APPROVE, "Ann", "✅ Approved by Ann"),
        (Decision.REJECT, "Ben <b>", "❌ Rejected by Ben &lt;b&gt;"),
    ],
)
def test_decided_lines(decision: Decision, name: str, line: str) -> None:
    assert decided_line(decision, name) == line


@pytest.mark.parametrize(
    "raw",
    ["", "not json", "[]", '{"channel": "C1"}', '{"channel": "C1", "ts": 5}', '{"ts": "1.2"}'],
)
def test_an_unreadable_address_is_none(raw: str) -> None:
    assert PromptAddress.decode(raw) is None


def test_an_address_survives_the_round_trip() -> None:
    address = PromptAddress("C1", None, "1.2", 'run `lookup_ticket` with `{"a": "é"}`?')
    assert PromptAddress.decode(address.encode()) == address


def _payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": ANN, "username": "ann", "name": "ann", "team_id": TEAM},
        "team": {"id": TEAM, "domain": "fake"},
        "container": {"type": "message", "message_ts": "2.0", "channel_id": CHANNEL},
        "channel": {"id": CHANNEL, "name": "general"},
        "message": {
            "ts": "2.0",
            "thread_ts": "1.0",
            "text": "fallback",
            "blocks": prompt_blocks("the prompt", "abc"),
        },
    }
    payload.update(overrides)
    return payload


def test_a_click_is_read_from_the_block_actions_payload() -> None:
    action = {"action_id": REJECT, "value": "abc", "type": "button"}
    assert read_click(_payload(), action) == Click(
        approval_id="abc",
        decision=Decision.REJECT,
        user=ANN,
        user_name="ann",
        team=TEAM,
        channel=CHANNEL,
        ts="2.0",
        thread_ts="1.0",
        text="the prompt",
    )


@pytest.mark.parametrize(
    ("payload", "action"),
    [
        (_payload(), {"action_id": "something_else", "value": "abc"}),
        (_payload(), {"action_id": APPROVE, "value": ""}),
        (_payload(user={}), {"action_id": APPROVE, "value": "abc"}),
        (_payload(channel={}, container={}), {"action_id": APPROVE, "value": "abc"}),
    ],
)
def test_a_click_without_its_details_is_none(
    payload: dict[str, Any], action: dict[str, Any]
) -> None:
    assert read_click(payload, action) is None


async def test_a_prompt_replaces_an_answer_already_streamed(slack: FakeSlack) -> None:
    client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
    for streaming in (True, False):
        thread = f"1700000000.00010{int(streaming)}"
        writer = AnswerWriter(
            client,
            Destination(CHANNEL, thread, TEAM, ANN),
            throttle=ChannelThrottle(0.0),
            streaming=streaming,
            max_chars=3900,
            interval=0,
        )
        await writer.add("Let me look that up.")
        ts = await writer.show_prompt("Let me look that up.\n\nRun it?", prompt_blocks("Run?", "x"))
        (shown,) = slack.bot_messages(CHANNEL, thread)  # the prompt took the answer's place
        assert shown.ts == ts
        assert shown.text == "Let me look that up.\n\nRun it?"
        assert len(shown.buttons()) == 2
        assert not shown.streaming
        assert writer.posted
    assert len(slack.called("chat.startStream")) == 1  # the first one streamed, then stopped
    assert len(slack.called("chat.stopStream")) == 1


async def test_the_outlet_logs_an_unreadable_address(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
    core: Any = None  # nothing reaches the core without an address
    delivery = SlackDelivery(core, client, streaming=True, max_chars=3900, update_interval=0)
    lookups = SlackLookups(client)
    outlet = SlackApprovals(
        core, delivery, lookups, policy=AccessPolicy(), inflight=InFlight("Slack")
    )
    request = ApprovalRequest("abc", (), ANN, "Ann", datetime.now(UTC))
    with caplog.at_level(logging.WARNING):
        await outlet.settled(request, "garbage", ApprovalEnding.EXPIRED, None)
    assert "cannot be read" in caplog.text
    assert slack.called("chat.update") == []
