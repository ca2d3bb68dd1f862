"""When the Slack bot answers and which thread a message goes to: the pure rules, as tables."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from adapters.slack.rules import (
    AccessPolicy,
    EventFacts,
    Route,
    decide,
    facts_from_event,
    is_dm,
    mentions,
    needs_thread_check,
    readable_text,
    shortcut_route,
    slash_command_thread_key,
    thread_key,
)

T = "T1"
C = "C1"
D = "D1"
TS = "1700000000.000100"
ROOT = "1699999999.000050"
OPEN = AccessPolicy()


def facts(**overrides: object) -> EventFacts:
    base = EventFacts(channel=C, ts=TS, author="U1", team=T)
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def route(thread: str, reply_thread: str | None, channel: str = C) -> Route:
    return Route(thread_key(T, channel, thread), reply_thread, f"{channel}:{TS}")


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        # A mention at the top of a channel opens a thread under it.
        (facts(mentioned=True), route(TS, TS)),
        # A mention inside a thread belongs to that thread.
        (facts(mentioned=True, thread_ts=ROOT), route(ROOT, ROOT)),
        # Unmentioned channel chatter is not for the bot...
        (facts(), None),
        # ...nor a thread the bot takes no part in...
        (facts(thread_ts=ROOT), None),
        # ...but a thread it takes part in needs no mention.
        (facts(thread_ts=ROOT, bot_in_thread=True), route(ROOT, ROOT)),
        # Top-level DM messages share one memory and are answered top-level.
        (facts(channel=D, dm=True), route("dm", None, D)),
        # A thread in a DM is a conversation of its own.
        (facts(channel=D, dm=True, thread_ts=ROOT), route(ROOT, ROOT, D)),
        # Files with a message, and broadcasts from a thread, are things people said.
        (facts(mentioned=True, subtype="file_share"), route(TS, TS)),
        # Files alone (no text, so no mention) where no mention is needed: a DM, a bot thread.
        (facts(channel=D, dm=True, subtype="file_share"), route("dm", None, D)),
        (facts(thread_ts=ROOT, bot_in_thread=True, subtype="file_share"), route(ROOT, ROOT)),
        (facts(thread_ts=ROOT, subtype="file_share"), None),
        (facts(subtype="file_share"), None),
        (facts(thread_ts=ROOT, bot_in_thread=True, subtype="thread_broadcast"), route(ROOT, ROOT)),
        # Edits, deletions, joins are not.
        (facts(mentioned=True, subtype="message_changed"), None),
        (facts(channel=D, dm=True, subtype="channel_join"), None),
        # Other bots are left alone by default.
        (facts(mentioned=True, from_bot=True, subtype="bot_message"), None),
        # Malformed events are ignored.
        (facts(mentioned=True, author=""), None),
        (facts(mentioned=True, ts=""), None),
    ],
)
def test_which_messages_are_answered_and_where(event: EventFacts, expected: Route | None) -> None:
    assert decide(event, OPEN, reply_to_bots=False) == expected


@pytest.mark.parametrize("channel_type", ["im", "channel"])
def test_a_file_shared_without_text_is_read_as_a_person_s_message(channel_type: str) -> None:
    channel = D if channel_type == "im" else C
    event: dict[str, Any] = {
        "type": "message",
        "subtype": "file_share",
        "text": "",
        "files": [{"id": "F1", "name": "notes.txt", "mimetype": "text/plain"}],
        "upload": True,
        "user": "U1",
        "display_as_bot": False,
        "ts": TS,
        "channel": channel,
        "channel_type": channel_type,
        **({"thread_ts": ROOT} if channel_type == "channel" else {}),
    }
    found = facts_from_event(event, bot_user="U0BOT", team=T, via_mention=False)
    assert (found.subtype, found.from_bot, found.mentioned, found.author) == (
        "file_share",
        False,
        False,
        "U1",
    )
    if channel_type == "channel":
        assert needs_thread_check(found)
        found = dataclasses.replace(found, bot_in_thread=True)
        assert decide(found, OPEN, reply_to_bots=False) == route(ROOT, ROOT)
    else:
        assert decide(found, OPEN, reply_to_bots=False) == route("dm", None, D)
    assert readable_text(event["text"], "U0BOT") == ""


def test_other_bots_are_answered_when_configured() -> None:
    event = facts(mentioned=True, from_bot=True, author="B1", subtype="bot_message")
    assert decide(event, OPEN, reply_to_bots=True) == route(TS, TS)


@pytest.mark.parametrize(
    ("policy", "channel", "user", "allowed"),
    [
        (AccessPolicy(), C, "U1", True),
        (AccessPolicy(channels=frozenset({C})), C, "U1", True),
        (AccessPolicy(channels=frozenset({"C2"})), C, "U1", False),
        (AccessPolicy(users=frozenset({"U1"})), C, "U1", True),
        (AccessPolicy(users=frozenset({"U2"})), C, "U1", False),
        (AccessPolicy(channels=frozenset({C}), users=frozenset({"U2"})), C, "U1", False),
    ],
)
def test_allow_lists(policy: AccessPolicy, channel: str, user: str, allowed: bool) -> None:
    assert policy.permits(channel, user) is allowed
    event = facts(channel=channel, author=user, mentioned=True)
    assert (decide(event, policy, reply_to_bots=False) is not None) is allowed


@pytest.mark.parametrize(
    ("event", "needed"),
    [
        (facts(thread_ts=ROOT), True),
        (facts(thread_ts=ROOT, mentioned=True), False),
        (facts(channel=D, dm=True, thread_ts=ROOT), False),
        (facts(), False),
    ],
)
def test_the_thread_look_up_is_made_only_when_it_decides(event: EventFacts, needed: bool) -> None:
    assert needs_thread_check(event) is needed


def test_commands_outside_messages_find_their_thread() -> None:
    assert slash_command_thread_key(T, C, "general") == "slack:T1:C1:channel"
    assert slash_command_thread_key(T, D, "directmessage") == "slack:T1:D1:dm"
    assert shortcut_route(T, C, TS, ROOT) == (thread_key(T, C, ROOT), ROOT)
    assert shortcut_route(T, C, TS, None) == (thread_key(T, C, TS), TS)
    assert shortcut_route(T, D, TS, None) == (thread_key(T, D, "dm"), None)


def test_thread_keys_and_dm_detection() -> None:
    assert thread_key("T1", "C1", "1700000000.000100") == "slack:T1:C1:1700000000.000100"
    assert is_dm("D123")
    assert not is_dm("C123")
    assert is_dm("C123", "im")
    assert not is_dm("D123", "mpim")


def test_mentions() -> None:
    assert mentions("hi <@U0BOT>", "U0BOT")
    assert mentions("hi <@U0BOT|memorybot>", "U0BOT")
    assert not mentions("hi <@U0BOTX>", "U0BOT")
    assert not mentions("hi", "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<@U0BOT> hello", "hello"),
        ("<@U0BOT>: hello", "hello"),
        ("hey <@U0BOT|memorybot> how are you", "hey how are you"),
        # Slack encodes &, < and > in what people type; they reach the model as typed.
        ("<@U0BOT> is 3 &lt; 5 &amp;&amp; 7 &gt; 2?", "is 3 < 5 && 7 > 2?"),
        ("a literal &amp;lt; stays as typed", "a literal &lt; stays as typed"),
        ("x -&gt; y", "x -> y"),
        # Other markup becomes what the person saw.
        ("ask <@U0OTHER> too", "ask @U0OTHER too"),
        ("ask <@U0OTHER|ben> too", "ask @ben too"),
        ("see <#C0GEN|general>", "see #general"),
        ("<!here> lunch?", "@here lunch?"),
        ("ping <!subteam^S1|@oncall>", "ping @oncall"),
        ("read <https://example.com/a?b=1&amp;c=2>", "read https://example.com/a?b=1&c=2"),
        ("read <https://example.com|the docs>", "read the docs (https://example.com)"),
        ("mail <mailto:a@b.co|a@b.co>", "mail a@b.co"),
        ("<https://x.io|x &amp; y>", "x & y (https://x.io)"),
    ],
)
def test_readable_text(text: str, expected: str) -> None:
    assert readable_text(text, "U0BOT") == expected
