"""The shared post-then-edit streamer and its per-channel throttle, without any platform."""

from __future__ import annotations

import asyncio

from adapters.streaming import CannotPost, ChannelThrottle, StreamedReply


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
    assert len(throttle) <= 2


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
    return StreamedReply(
        poster,
        ChannelThrottle(interval),
        7,
        limit=limit,
        indicator=poster.typing,
        typing_interval=0.01,
    )


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


async def test_a_reply_goes_on_in_a_message_already_shown_and_renders_its_markup() -> None:
    poster = FakePoster()
    poster.shown[41] = "streamed natively so far"
    stream = StreamedReply(
        poster,
        ChannelThrottle(0.0),
        7,
        limit=2000,
        render=lambda text, final: text.upper() + ("" if final else " …"),
    )
    stream.adopt(41)
    await stream.add("partial")
    await asyncio.sleep(0.01)
    assert poster.shown == {41: "PARTIAL …"}
    assert await stream.finish("the whole answer")
    assert poster.shown == {41: "THE WHOLE ANSWER"}
    assert [kind for kind, _, _ in poster.log] == ["edit", "edit"]
