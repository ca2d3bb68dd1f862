"""Tools on Discord: the "Using …" line, and approvals by button, end to end and part by part.

Real discord.py against the fake Discord (component interactions, interaction callbacks,
follow-ups, message components) and the real core against the fake model, which calls
`lookup_ticket` when asked about a ticket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.discord.prompts import (
    CUSTOM_ID,
    OUTCOME_LINES,
    PromptAddress,
    custom_id,
    decided_line,
    settled_text,
)
from adapters.discord.text import MAX_MESSAGE_CHARS
from bot.adapter import SHUTTING_DOWN, ApprovalEnding, Decision
from tests.fakes.discord_server import DROPPED, FakeDiscord, Json
from tests.fakes.openai_server import FakeOpenAI, Fault
from tests.support.discord import (
    ANN,
    BOB,
    CHANNEL,
    DM,
    GUILD,
    THREAD_A,
    Harness,
    TicketDesk,
    buttons,
    calls_lookup,
    channel_payload,
    discord_config,
    eventually,
    thread,
)

THREAD_KEY = f"discord:{GUILD}:{THREAD_A}"
"""THREAD_A's key, which is also its memory's under the default `BOT_MEMORY_SCOPE=thread`."""
ANSWER = "The ticket says: T-1 is open: printer on fire"
APPROVE_ID = r"approval:approve:[A-Za-z0-9_-]{1,84}"


@pytest.fixture
def desk() -> TicketDesk:
    return TicketDesk()


@pytest.fixture
async def approving(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path, desk: TicketDesk
) -> AsyncIterator[Harness]:
    """A bot whose `lookup_ticket` needs approval (from the asker, the default)."""
    fake_openai.responder = calls_lookup()
    config = discord_config(fake_openai, tmp_path / "memory.sqlite3")
    harness = await Harness.start(fake_discord, config, tools=[desk.tool(needs_approval=True)])
    yield harness
    await harness.stop()


async def ask_for_ticket(harness: Harness, channel: int = THREAD_A, **options: Any) -> Json:
    """Ask about a ticket and return the approval prompt the bot posts."""
    await harness.say(channel, "what does ticket T-1 say?", mention=True, **options)
    prompts = harness.prompts(channel)
    assert len(prompts) == 1, harness.shown(channel)
    return prompts[0]


def current(harness: Harness, message: Json) -> Json:
    """A message as the fake holds it now (edits included)."""
    return harness.fake.messages[int(message["id"])]


def item_kinds(items: list[dict[str, Any]]) -> list[str]:
    return [str(item.get("role") or item.get("type")) for item in items]


def last_tool_output(fake_openai: FakeOpenAI) -> str:
    messages = fake_openai.requests[-1].messages
    return str(next(m for m in reversed(messages) if m.get("role") == "tool")["content"])


# ----- the "Using …" line --------------------------------------------------------------------


async def test_a_tool_call_shows_which_tool_then_the_answer(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path, desk: TicketDesk
) -> None:
    fake_openai.responder = calls_lookup()
    # The answer's request waits a little, so the status line has its moment on screen.
    fake_openai.latency = 0.2
    config = discord_config(fake_openai, tmp_path / "memory.sqlite3")
    harness = await Harness.start(fake_discord, config, tools=[desk.tool(needs_approval=False)])
    try:
        await harness.say(CHANNEL, "what does ticket T-1 say?", mention=True)
        writes = [
            r.body["content"]
            for r in fake_discord.requests
            if r.path.startswith(f"/channels/{CHANNEL}/messages") and r.method in ("POST", "PATCH")
        ]
        assert writes[0] == "Using `lookup_ticket`…"
        assert harness.shown(CHANNEL) == [ANSWER]
        assert desk.looked_up == ["T-1"]
        items = await harness.parts.store.read_items(f"discord:{GUILD}:{CHANNEL}")
        assert item_kinds(items) == ["user", "function_call", "function_call_output", "assistant"]
    finally:
        await harness.stop()


# ----- approvals -----------------------------------------------------------------------------


async def test_the_prompt_has_approve_and_reject_buttons_and_nothing_is_stored_yet(
    approving: Harness, desk: TicketDesk
) -> None:
    prompt = await ask_for_ticket(approving)
    assert "lookup_ticket" in prompt["content"]
    approve, reject = buttons(prompt)
    assert (approve["label"], approve["style"]) == ("Approve", 3)  # success
    assert (reject["label"], reject["style"]) == ("Reject", 4)  # danger
    approval_id = approve["custom_id"].removeprefix("approval:approve:")
    assert approve["custom_id"] == f"approval:approve:{approval_id}"
    assert reject["custom_id"] == f"approval:reject:{approval_id}"
    assert len(prompt["components"]) == 1  # one action row
    assert desk.looked_up == []
    assert await approving.parts.store.count_items(THREAD_KEY) == 0


async def test_approve_runs_the_tool_and_the_answer_follows(
    approving: Harness, desk: TicketDesk, fake_openai: FakeOpenAI
) -> None:
    prompt = await ask_for_ticket(approving)
    click = await approving.click(prompt, Decision.APPROVE, channel=thread(THREAD_A, 101))

    callbacks = approving.fake.calls("POST", f"/interactions/{click['id']}/")
    assert [c.body["type"] for c in callbacks] == [6]  # acknowledged, to update later
    assert desk.looked_up == ["T-1"]
    settled = current(approving, prompt)
    assert settled["components"] == []
    assert settled["content"].startswith(prompt["content"])
    assert settled["content"].endswith("✅ Approved by Ann")
    assert approving.shown(THREAD_A)[-1] == ANSWER
    assert len(approving.shown(THREAD_A)) == 2  # the prompt, then the answer
    assert "T-1 is open" in last_tool_output(fake_openai)
    items = await approving.parts.store.read_items(THREAD_KEY)
    assert item_kinds(items) == ["user", "function_call", "function_call_output", "assistant"]


async def test_reject_does_not_run_the_tool_and_tells_the_model(
    approving: Harness, desk: TicketDesk, fake_openai: FakeOpenAI
) -> None:
    prompt = await ask_for_ticket(approving)
    await approving.click(prompt, Decision.REJECT, channel=thread(THREAD_A, 101))

    assert desk.looked_up == []
    assert "rejected" in last_tool_output(fake_openai)
    settled = current(approving, prompt)
    assert settled["components"] == []
    assert settled["content"].endswith("❌ Rejected by Ann")
    assert approving.shown(THREAD_A)[-1].startswith("The ticket says:")
    items = await approving.parts.store.read_items(THREAD_KEY)
    assert item_kinds(items) == ["user", "function_call", "function_call_output", "assistant"]


async def test_someone_else_s_click_gets_a_private_notice_and_changes_nothing(
    approving: Harness, desk: TicketDesk
) -> None:
    prompt = await ask_for_ticket(approving)
    before = json.loads(json.dumps(current(approving, prompt)))
    await approving.click(prompt, Decision.APPROVE, channel=thread(THREAD_A, 101), author=BOB)

    notices = approving.fake.ephemeral_messages(int(BOB["id"]))
    assert [n["content"] for n in notices] == ["Only Ann can approve or reject this."]
    assert notices[0]["flags"] & 64
    assert current(approving, prompt) == before
    assert approving.shown(THREAD_A) == [prompt["content"]]
    assert desk.looked_up == []
    # The asker still can.
    await approving.click(prompt, Decision.APPROVE, channel=thread(THREAD_A, 101))
    assert approving.shown(THREAD_A)[-1] == ANSWER


async def test_with_approvers_allowed_anyone_on_the_allow_lists_may_decide(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path, desk: TicketDesk
) -> None:
    fake_openai.responder = calls_lookup()
    config = discord_config(
        fake_openai,
        tmp_path / "memory.sqlite3",
        approvers="allowed",
        env={"DISCORD_ALLOWED_USERS": f"{ANN['id']},{BOB['id']}"},
    )
    harness = await Harness.start(fake_discord, config, tools=[desk.tool(needs_approval=True)])
    try:
        prompt = await ask_for_ticket(harness)
        outsider = {**BOB, "id": "104", "username": "Cy", "global_name": "Cy"}
        await harness.click(
            prompt, Decision.APPROVE, channel=thread(THREAD_A, 101), author=outsider
        )
        assert harness.fake.ephemeral_messages(104)
        assert desk.looked_up == []
        await harness.click(prompt, Decision.APPROVE, channel=thread(THREAD_A, 101), author=BOB)
        assert desk.looked_up == ["T-1"]
        assert current(harness, prompt)["content"].endswith("✅ Approved by Bob")
    finally:
        await harness.stop()


async def test_expiry_marks_the_prompt_and_posts_the_model_s_answer(
    approving: Harness, desk: TicketDesk, fake_openai: FakeOpenAI
) -> None:
    prompt = await ask_for_ticket(approving)
    seen = json.loads(json.dumps(prompt))  # as a slow client still shows it
    later = datetime.now(UTC) + timedelta(days=1)
    assert await approving.parts.core.expire_approvals(now=later) == 1

    # The core updates prompts in the background, off the sweep's time.
    await eventually(lambda: len(approving.shown(THREAD_A)) == 2, what="the answer")
    settled = current(approving, prompt)
    assert settled["components"] == []
    assert settled["content"].startswith(seen["content"])
    assert settled["content"].endswith("⌛ Expired — not run")
    assert approving.shown(THREAD_A)[-1].startswith("The ticket says:")
    assert desk.looked_up == []
    assert "Nobody approved" in last_tool_output(fake_openai)
    # A click that was on its way is told, privately, that it is over.
    await approving.click(seen, Decision.APPROVE, channel=thread(THREAD_A, 101))
    assert approving.fake.ephemeral_messages(int(ANN["id"]))
    assert desk.looked_up == []


@pytest.mark.parametrize("held", ["the answer's post", "the prompt's update before it"])
async def test_shutdown_lets_the_answer_after_an_expiry_finish_posting(
    approving: Harness, caplog: pytest.LogCaptureFixture, held: str
) -> None:
    prompt = await ask_for_ticket(approving)
    if held == "the answer's post":
        posting = approving.fake.hold("POST", rf"^/channels/{THREAD_A}/messages$")
    else:
        posting = approving.fake.hold("PATCH", rf"^/channels/{THREAD_A}/messages/{prompt['id']}$")
    later = datetime.now(UTC) + timedelta(days=1)
    assert await approving.parts.core.expire_approvals(now=later) == 1
    await asyncio.wait_for(posting.arrived.wait(), 10)
    client = approving.adapter.client
    try:
        with caplog.at_level(logging.INFO, logger="adapters.inflight"):
            closing = asyncio.create_task(approving.adapter.close(grace=10.0))
            await eventually(
                lambda: client.is_closed() or "Finishing 1 Discord" in caplog.text,
                what="the shutdown to wait or disconnect",
            )
        assert not client.is_closed()  # it waits for the answer under way
    finally:
        posting.release()
    await asyncio.wait_for(closing, 10)
    assert client.is_closed()
    assert current(approving, prompt)["content"].endswith("⌛ Expired — not run")
    assert approving.shown(THREAD_A)[-1].startswith("The ticket says:")


async def test_approve_after_a_restart(
    fake_discord: FakeDiscord, fake_openai: FakeOpenAI, tmp_path: Path, desk: TicketDesk
) -> None:
    fake_openai.responder = calls_lookup()
    config = discord_config(fake_openai, tmp_path / "memory.sqlite3")
    tools = [desk.tool(needs_approval=True)]
    first = await Harness.start(fake_discord, config, tools=tools)
    # In a DM, whose channel the restarted client has never seen.
    prompt = await ask_for_ticket(first, DM, guild=None)
    await first.stop()

    second = await Harness.start(fake_discord, config, tools=tools)
    try:
        dm_channel = {"id": str(DM), "type": 1}
        await second.click(prompt, Decision.APPROVE, channel=dm_channel, guild=None)
        assert desk.looked_up == ["T-1"]
        assert current(second, prompt)["content"].endswith("✅ Approved by Ann")
        assert second.shown(DM)[-1] == ANSWER
        items = await second.parts.store.read_items(f"discord:dm:{DM}")
        assert item_kinds(items) == ["user", "function_call", "function_call_output", "assistant"]
    finally:
        await second.stop()


async def test_a_new_message_while_pending_cancels_the_call_and_is_answered(
    approving: Harness, desk: TicketDesk
) -> None:
    prompt = await ask_for_ticket(approving)
    seen = json.loads(json.dumps(prompt))
    await approving.say(THREAD_A, "never mind, how are you?")

    await eventually(lambda: not buttons(current(approving, prompt)), what="the prompt update")
    settled = current(approving, prompt)
    assert settled["content"].endswith("🚫 Cancelled — a new message came in")
    assert approving.shown(THREAD_A)[-1].startswith("You said: [Ann] never mind, how are you?")
    assert desk.looked_up == []
    await approving.click(seen, Decision.APPROVE, channel=thread(THREAD_A, 101))
    assert approving.fake.ephemeral_messages(int(ANN["id"]))
    assert desk.looked_up == []


def button_tries(harness: Harness, channel: int) -> int:
    """Edits that tried to put the buttons on a message in `channel`, failed or not."""
    path = re.compile(rf"^/channels/{channel}/messages/\d+$")
    return sum(
        1
        for r in harness.fake.requests
        if r.method == "PATCH" and path.search(r.path) and (r.body or {}).get("components")
    )


async def test_a_prompt_discord_refuses_once_is_tried_again(
    approving: Harness, desk: TicketDesk
) -> None:
    # 403 Missing Permissions (50013) on the edit that adds the buttons: discord.py does not
    # retry it, and a permission may be back a moment later (an admin fixing the channel).
    approving.fake.fail("PATCH", rf"/channels/{THREAD_A}/messages/\d+$", 403)
    prompt = await ask_for_ticket(approving)

    assert button_tries(approving, THREAD_A) == 2
    assert "lookup_ticket" in prompt["content"]
    assert desk.looked_up == []
    pending = await approving.parts.store.approval_in(THREAD_KEY)
    assert pending is not None
    assert pending.address is not None  # an expiry will find the prompt
    assert await approving.parts.store.count_items(THREAD_KEY) == 0
    await approving.click(prompt, Decision.APPROVE, channel=thread(THREAD_A, 101))
    assert desk.looked_up == ["T-1"]
    assert approving.shown(THREAD_A)[-1] == ANSWER


@pytest.mark.parametrize("refused", ["the post", "the buttons", "the connection"])
async def test_a_prompt_discord_refuses_ends_the_turn_with_a_plain_line(
    approving: Harness, desk: TicketDesk, refused: str
) -> None:
    # 403 Missing Permissions (50013): discord.py does not retry it. A connection dropped
    # with no answer reaches us as aiohttp's error, not discord.py's. The buttons are tried
    # twice, and both tries fail.
    if refused == "the post":
        approving.fake.fail("POST", rf"/channels/{THREAD_A}/messages$", 403)
    else:
        status = 403 if refused == "the buttons" else DROPPED
        approving.fake.fail("PATCH", rf"/channels/{THREAD_A}/messages/\d+$", status, times=2)
    await approving.say(THREAD_A, "what does ticket T-1 say?", mention=True)
    if refused == "the post":  # nothing can be posted here at all (logged)
        assert approving.shown(THREAD_A) == []
    else:  # the prompt's text gives way to the line
        assert approving.shown(THREAD_A) == [
            "I needed someone's OK to run lookup_ticket, but I couldn't show the Approve and "
            "Reject buttons here, so I didn't run it. An admin may need to check my "
            "permissions in this channel; then ask again."
        ]
        assert button_tries(approving, THREAD_A) == 2
    assert approving.prompts(THREAD_A) == []
    assert desk.looked_up == []
    assert await approving.parts.store.approval_in(THREAD_KEY) is None  # nothing to expire
    items = await approving.parts.store.read_items(THREAD_KEY)
    assert item_kinds(items) == ["user", "function_call", "function_call_output"]
    assert "approval prompt could not be shown" in str(items[-1]["output"])


async def test_a_resume_that_fails_before_any_tool_ran_gives_the_buttons_back(
    approving: Harness, desk: TicketDesk, fake_openai: FakeOpenAI
) -> None:
    prompt = await ask_for_ticket(approving)
    seen = json.loads(json.dumps(prompt))
    # Rejected, the model starts its answer, then the stream breaks: nothing ran, nothing is
    # stored, the approval is still pending.
    fake_openai.chunk_chars = 4
    fake_openai.chunk_delay = 0.02
    fake_openai.fail_next(Fault(break_after=6))
    await approving.click(prompt, Decision.REJECT, channel=thread(THREAD_A, 101))

    assert approving.shown(THREAD_A)[-1] == (
        "I couldn't reach the AI model just now. Please try again shortly."
    )
    restored = current(approving, prompt)
    assert restored["content"] == seen["content"]
    assert restored["components"] == seen["components"]
    # It was taken away while the answer streamed, then given back.
    edits = approving.fake.calls("PATCH", "/messages/@original")
    assert [bool(e.body["components"]) for e in edits] == [False, True]
    assert await approving.parts.store.count_items(THREAD_KEY) == 0
    await approving.click(prompt, Decision.APPROVE, channel=thread(THREAD_A, 101))
    assert approving.shown(THREAD_A)[-1] == ANSWER
    assert desk.looked_up == ["T-1"]
    assert current(approving, prompt)["components"] == []


async def test_an_answer_that_fails_after_the_tool_ran_settles_the_prompt(
    approving: Harness, desk: TicketDesk, fake_openai: FakeOpenAI
) -> None:
    prompt = await ask_for_ticket(approving)
    seen = json.loads(json.dumps(prompt))
    fake_openai.fail_next(Fault(status=500))
    await approving.click(prompt, Decision.APPROVE, channel=thread(THREAD_A, 101))

    assert desk.looked_up == ["T-1"]
    assert approving.shown(THREAD_A)[-1].startswith("The AI model had a problem on its side.")
    assert current(approving, prompt)["components"] == []
    assert current(approving, prompt)["content"].endswith("✅ Approved by Ann")
    # The tool's result is kept, so a second click cannot run it again.
    await approving.click(seen, Decision.APPROVE, channel=thread(THREAD_A, 101))
    assert approving.fake.ephemeral_messages(int(ANN["id"]))
    assert desk.looked_up == ["T-1"]


async def test_a_prompt_in_a_channel_replies_to_the_question(approving: Harness) -> None:
    await approving.say(CHANNEL, "ticket T-1, please", mention=True)
    prompt = approving.prompts(CHANNEL)[0]
    sent = approving.fake.calls("POST", f"/channels/{CHANNEL}/messages$")
    assert sent[0].body["message_reference"]["fail_if_not_exists"] is False
    await approving.click(prompt, Decision.APPROVE, channel=channel_payload(CHANNEL))
    assert approving.shown(CHANNEL) == [current(approving, prompt)["content"], ANSWER]


async def test_a_resumed_turn_cut_short_by_shutdown_gives_the_buttons_back(
    approving: Harness, fake_openai: FakeOpenAI
) -> None:
    prompt = await ask_for_ticket(approving)
    seen = json.loads(json.dumps(prompt))
    fake_openai.chunk_chars = 2
    fake_openai.chunk_delay = 0.05
    click = approving.fake.component_interaction(
        int(prompt["id"]),
        buttons(prompt)[0]["custom_id"],
        channel=thread(THREAD_A, 101),
        author=ANN,
        guild_id=GUILD,
    )
    await approving.fake.dispatch("INTERACTION_CREATE", click)
    await eventually(
        lambda: approving.shown(THREAD_A)[-1].startswith("The ticket"), what="the answer"
    )
    await approving.parts.core.drain(grace=0.01)
    await eventually(lambda: int(click["id"]) in approving.adapter.handled, what="the click")

    assert approving.shown(THREAD_A)[-1] == SHUTTING_DOWN
    assert current(approving, prompt)["content"] == seen["content"]
    assert len(buttons(current(approving, prompt))) == 2
    assert await approving.parts.store.count_items(THREAD_KEY) == 0


# ----- acknowledged before the work -------------------------------------------------------


async def test_a_click_is_acknowledged_before_the_resumed_turn_runs(
    approving: Harness, fake_discord: FakeDiscord, fake_openai: FakeOpenAI
) -> None:
    await approving.say(THREAD_A, "ticket T-1?", mention=True)
    prompt = approving.prompts(THREAD_A)[0]
    # Discord gives 3 s; here 0.3 s, with a model slower than that.
    fake_discord.ack_seconds = 0.3
    fake_openai.latency = 0.6
    await approving.click(prompt, Decision.APPROVE, channel=thread(THREAD_A, 101))
    assert approving.shown(THREAD_A)[-1].startswith("The ticket says:")
    assert not buttons(fake_discord.messages[int(prompt["id"])])
    assert all(r.status == 200 for r in fake_discord.requests if "/interactions/" in r.path)


# ----- the pure parts ----------------------------------------------------------------------


def test_custom_ids_fit_discord_s_limit_and_round_trip() -> None:
    longest = custom_id(Decision.REJECT, "x" * 84)
    assert len(longest) == 100
    match = CUSTOM_ID.fullmatch(longest)
    assert match is not None
    assert (match["decision"], match["approval_id"]) == ("reject", "x" * 84)
    assert CUSTOM_ID.fullmatch(custom_id(Decision.APPROVE, "Ab-_9")) is not None
    for foreign in ("approval:maybe:abc", "approval:approve:", "other:approve:abc"):
        assert CUSTOM_ID.fullmatch(foreign) is None


@pytest.mark.parametrize(
    ("prompt", "line", "expected"),
    [
        ("Run it?", "✅ Approved by Ann", "Run it?\n\n✅ Approved by Ann"),
        ("", "⌛ Expired — not run", "⌛ Expired — not run"),
    ],
)
def test_settled_text_keeps_the_request_and_adds_the_outcome(
    prompt: str, line: str, expected: str
) -> None:
    assert settled_text(prompt, line) == expected


def test_settled_text_fits_one_message() -> None:
    text = settled_text("a" * MAX_MESSAGE_CHARS, OUTCOME_LINES[ApprovalEnding.CANCELLED])
    assert len(text) == MAX_MESSAGE_CHARS
    assert text.endswith("…\n\n🚫 Cancelled — a new message came in")


def test_decided_lines_escape_markdown_in_names() -> None:
    assert decided_line(Decision.APPROVE, "Ann") == "✅ Approved by Ann"
    assert decided_line(Decision.REJECT, "*Bo*") == "❌ Rejected by \\*Bo\\*"


def test_prompt_addresses_round_trip_and_foreign_ones_are_refused() -> None:
    address = PromptAddress(30, 1_100_000_000_000_000_006)
    assert PromptAddress.loads(address.dumps()) == address
    for foreign in ("", "{}", '{"channel": "C1", "ts": "1.2"}', "not json"):
        with pytest.raises(ValueError, match="not a Discord prompt address"):
            PromptAddress.loads(foreign)
