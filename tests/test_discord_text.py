"""The Discord adapter's pure parts: keys, mentions, splitting, throttling, rules, streaming."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.discord_rules import (
    AccessPolicy,
    ActiveThreads,
    Decision,
    MessageFacts,
    Place,
    decide,
)
from adapters.discord_stream import CannotPost, StreamedReply
from adapters.discord_text import (
    ChannelThrottle,
    session_key,
    split_message,
    strip_mentions,
    thread_title,
)

FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")


# ----- keys, mentions, titles ----------------------------------------------------------------


def test_session_keys() -> None:
    assert session_key(10, 20) == "discord:10:20"
    assert session_key(None, 40) == "discord:dm:40"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("<@42> hello", "hello"),
        ("<@!42> hello", "hello"),
        ("hello <@42>", "hello"),
        ("hi <@42>, how are you?", "hi , how are you?"),
        ("<@&7> by role", "by role"),
        ("<@43> is someone else", "<@43> is someone else"),
        ("<@42> /forget", "/forget"),
        ("<@42>\n```py\ncode\n```", "```py\ncode\n```"),
    ],
)
def test_strip_mentions(content: str, expected: str) -> None:
    assert strip_mentions(content, 42, [7]) == expected


def test_thread_title() -> None:
    assert thread_title("plan a trip\nto Rome") == "plan a trip"
    assert thread_title("   ") == "Conversation"
    long = thread_title("x" * 200)
    assert len(long) == 80
    assert long.endswith("…")


# ----- splitting -----------------------------------------------------------------------------


def test_short_text_is_one_part() -> None:
    assert split_message("hello") == ["hello"]
    assert split_message("x" * 2000) == ["x" * 2000]
    assert split_message("  \n ") == []


def test_splits_on_lines_then_words_then_anywhere() -> None:
    lines = "".join(f"line {i:03d}\n" for i in range(30))  # 9 chars each
    parts = split_message(lines, limit=50)
    assert all(len(p) <= 50 for p in parts)
    assert all(p.endswith("\n") for p in parts)
    assert "".join(parts) == lines

    words = " ".join(f"w{i:02d}" for i in range(40))
    parts = split_message(words, limit=50)
    assert all(len(p) <= 50 for p in parts)
    assert all(p.endswith(" ") for p in parts[:-1])
    assert "".join(parts) == words

    blob = "x" * 130
    assert split_message(blob, limit=50) == ["x" * 50, "x" * 50, "x" * 30]


def test_a_cut_inside_a_code_fence_closes_and_reopens_it() -> None:
    code = "".join(f"print({i})\n" for i in range(20))
    text = f"Intro\n```python\n{code}```\nDone."
    parts = split_message(text, limit=80)
    assert len(parts) > 2
    for part in parts:
        assert len(part) <= 80
        fences = [line for line in part.splitlines() if FENCE.match(line)]
        assert len(fences) % 2 == 0, part
    assert parts[1].startswith("```python\n")
    assert parts[0].endswith("```")
    assert _content_lines(parts) == _content_lines([text])


def test_tilde_fences_and_longer_closers() -> None:
    text = "~~~\n" + "a line here\n" * 20 + "~~~~\nafter\n"
    parts = split_message(text, limit=60)
    assert all(p.count("~~~") % 2 == 0 or p.rstrip().endswith("~~~") for p in parts)
    assert parts[-1].endswith("after\n")
    assert _content_lines(parts) == _content_lines([text])


def _content_lines(parts: list[str]) -> list[str]:
    return [line for part in parts for line in part.splitlines() if not FENCE.match(line)]


_line = st.one_of(
    st.text(alphabet=st.sampled_from("abc xyz.,"), max_size=120),
    st.sampled_from(["```", "```python", "~~~", "```js"]),
)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(_line, max_size=60), limit=st.integers(min_value=40, max_value=400))
def test_split_properties(lines: list[str], limit: int) -> None:
    text = "\n".join(lines)
    parts = split_message(text, limit)
    assert all(0 < len(p) <= limit and p.strip() for p in parts)
    if not any(FENCE.match(line) for line in lines):
        assert "".join(parts).strip() == text.strip()
    # Nothing but fence lines is added and no visible text is lost.
    assert [w for p in parts for w in _words(p)] == _words(text)


def _words(text: str) -> list[str]:
    return [w for line in text.splitlines() if not FENCE.match(line) for w in line.split()]


# ----- throttling ----------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_throttle_spaces_writes_per_channel() -> None:
    time = FakeTime()
    throttle = ChannelThrottle(1.0, clock=time.clock, sleep=time.sleep)
    await throttle.wait(1)
    await throttle.wait(2)  # another channel is not held up
    assert time.slept == []
    await throttle.wait(1)
    assert time.slept == [1.0]
    time.now += 0.25
    await throttle.wait(1)
    assert time.slept == [1.0, 0.75]
    time.now += 5
    await throttle.wait(1)
    assert time.slept == [1.0, 0.75]


async def test_a_final_write_uses_the_burst_budget_not_the_spacing() -> None:
    time = FakeTime()
    throttle = ChannelThrottle(1.0, burst=3, window=5.0, clock=time.clock, sleep=time.sleep)
    await throttle.wait(1)
    await throttle.wait(1, final=True)  # the finished answer shows at once
    assert time.slept == []
    await throttle.wait(1, final=True)
    assert time.slept == []
    await throttle.wait(1, final=True)  # a 4th write inside 5 s waits for the oldest to age out
    assert time.slept == [5.0]
    await throttle.wait(1)  # paced writes keep their spacing after a burst
    assert time.slept == [5.0, 1.0]


async def test_throttle_forgets_idle_channels() -> None:
    time = FakeTime()
    throttle = ChannelThrottle(1.0, clock=time.clock, sleep=time.sleep, capacity=2)
    for channel in range(3):
        await throttle.wait(channel)
    time.now += 10
    await throttle.wait(99)
    assert len(throttle._next) <= 2


# ----- rules ---------------------------------------------------------------------------------

CHANNEL = Place(guild_id=1, channel_id=20)
THREAD = Place(guild_id=1, channel_id=30, parent_id=20)
DM = Place(guild_id=None, channel_id=40)
EVERYONE = AccessPolicy()


def facts(place: Place = CHANNEL, **changes: object) -> MessageFacts:
    values: dict[str, object] = {
        "place": place,
        "author_id": 5,
        "author_is_bot": False,
        "is_self": False,
        "mentioned": False,
        "in_thread": place.parent_id is not None,
    }
    values.update(changes)
    return MessageFacts(**values)  # type: ignore[arg-type]


def answers(f: MessageFacts, policy: AccessPolicy = EVERYONE, **options: bool) -> bool:
    kwargs = {"reply_to_bots": False, "open_threads": False, **options}
    return decide(f, policy, **kwargs).answer


def test_when_the_bot_answers() -> None:
    assert not answers(facts())
    assert answers(facts(mentioned=True))
    assert answers(facts(DM))
    assert not answers(facts(THREAD))
    assert answers(facts(THREAD, mentioned=True))
    assert answers(facts(THREAD, thread_owned_by_bot=True))
    assert answers(facts(THREAD, thread_active=True))
    assert not answers(facts(DM, is_self=True))
    assert not answers(facts(DM, author_is_bot=True))
    assert answers(facts(DM, author_is_bot=True), reply_to_bots=True)
    assert not answers(facts(DM, is_self=True, author_is_bot=True), reply_to_bots=True)
    assert not answers(facts(DM, is_chat=False))


def test_open_threads_only_for_channel_mentions() -> None:
    options = {"reply_to_bots": False, "open_threads": True}
    assert decide(facts(mentioned=True), EVERYONE, **options) == Decision(True, open_thread=True)
    assert not decide(facts(THREAD, mentioned=True), EVERYONE, **options).open_thread
    assert not decide(facts(DM), EVERYONE, **options).open_thread


def test_allow_lists() -> None:
    guilds = AccessPolicy(guilds=frozenset({1}))
    assert guilds.permits(CHANNEL, 5)
    assert not guilds.permits(Place(2, 20), 5)
    assert not guilds.permits(DM, 5)

    channels = AccessPolicy(channels=frozenset({20}))
    assert channels.permits(CHANNEL, 5)
    assert channels.permits(THREAD, 5)  # a thread of an allowed channel
    assert not channels.permits(Place(1, 21), 5)
    assert not channels.permits(DM, 5)

    users = AccessPolicy(users=frozenset({5}))
    assert users.permits(CHANNEL, 5)
    assert not users.permits(CHANNEL, 6)
    assert users.permits(DM, 5)

    roles = AccessPolicy(roles=frozenset({77}))
    assert roles.permits(CHANNEL, 6, [77])
    assert not roles.permits(CHANNEL, 6, [78])
    assert not roles.permits(DM, 6)

    # Restricted to one guild, a named user may still DM the bot.
    mixed = AccessPolicy(guilds=frozenset({1}), users=frozenset({5}))
    assert mixed.permits(DM, 5)
    assert not mixed.permits(DM, 6)

    assert not answers(facts(mentioned=True, author_id=6), users)
    assert (
        decide(
            facts(mentioned=True, author_id=6), users, reply_to_bots=False, open_threads=False
        ).reason
        == "outside the allow-lists"
    )


def test_active_threads_are_bounded() -> None:
    threads = ActiveThreads(capacity=2)
    for thread_id in (1, 2, 3):
        threads.add(thread_id)
    assert 1 not in threads
    assert 2 in threads
    assert 3 in threads


# ----- streamed replies ----------------------------------------------------------------------


class FakePoster:
    def __init__(self) -> None:
        self.shown: dict[int, str] = {}
        self.log: list[tuple[str, int, str]] = []
        self.typing_calls = 0
        self.fail_sends: list[Exception] = []
        self._ids = iter(range(1, 1000))

    async def send(self, text: str, *, first: bool) -> int:
        if self.fail_sends:
            raise self.fail_sends.pop(0)
        handle = next(self._ids)
        self.shown[handle] = text
        self.log.append(("send", handle, text))
        return handle

    async def edit(self, handle: int, text: str) -> int:
        self.shown[handle] = text
        self.log.append(("edit", handle, text))
        return handle

    async def delete(self, handle: int) -> None:
        del self.shown[handle]
        self.log.append(("delete", handle, ""))

    async def typing(self) -> None:
        self.typing_calls += 1


def reply(poster: FakePoster, interval: float = 0.0, limit: int = 2000) -> StreamedReply[int]:
    return StreamedReply(poster, ChannelThrottle(interval), 7, limit=limit, typing_interval=0.01)


async def test_streams_then_shows_exactly_the_final_text() -> None:
    poster = FakePoster()
    stream = reply(poster, interval=0.02)
    stream.start_typing()
    await asyncio.sleep(0.03)
    typed = poster.typing_calls
    assert typed >= 1
    for word in ["Hello", " there", ", friend", "."]:
        await stream.add(word)
        await asyncio.sleep(0.025)
    assert await stream.finish("Hello there, friend. (note)")
    assert list(poster.shown.values()) == ["Hello there, friend. (note)"]
    assert poster.log[0][0] == "send"
    assert [kind for kind, _, _ in poster.log[1:]] == ["edit"] * (len(poster.log) - 1)
    assert poster.typing_calls == typed  # stopped at the first text


async def test_a_long_final_text_continues_in_new_messages_and_shrinks_back() -> None:
    poster = FakePoster()
    stream = reply(poster, limit=50)
    await stream.add("word " * 30)
    await asyncio.sleep(0.01)
    assert len(poster.shown) == 3
    assert await stream.finish("Sorry, that failed.")
    assert list(poster.shown.values()) == ["Sorry, that failed."]
    assert [kind for kind, _, _ in poster.log].count("delete") == 2


async def test_a_transient_failure_is_retried_and_a_permanent_one_stops() -> None:
    poster = FakePoster()
    poster.fail_sends = [RuntimeError("503 Service Unavailable")]
    stream = reply(poster)
    assert await stream.finish("hello")
    assert list(poster.shown.values()) == ["hello"]

    blocked = FakePoster()
    blocked.fail_sends = [CannotPost("403 Forbidden"), RuntimeError("never tried")]
    stream = reply(blocked)
    await stream.add("partial")
    await asyncio.sleep(0.01)
    assert not await stream.finish("hello")
    assert blocked.fail_sends  # gave up after the permission error
    assert stream.writes == 0


async def test_abort_shows_nothing() -> None:
    poster = FakePoster()
    stream = reply(poster)
    stream.start_typing()
    await stream.abort()
    await asyncio.sleep(0.02)
    assert poster.shown == {}


async def test_a_finished_answer_does_not_wait_behind_a_partial_edit() -> None:
    poster = FakePoster()
    stream = reply(poster, interval=30.0)  # a partial edit would wait half a minute
    await stream.add("Hello")
    for _ in range(100):
        if poster.log:
            break
        await asyncio.sleep(0.001)
    await stream.add(", world")  # its edit now waits for the channel's next slot...
    await asyncio.sleep(0.01)
    async with asyncio.timeout(2):  # ...but the final text skips the queue
        assert await stream.finish("Hello, world!")
    assert poster.log == [("send", 1, "Hello"), ("edit", 1, "Hello, world!")]
