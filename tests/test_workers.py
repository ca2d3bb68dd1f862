"""Two whole bot processes sharing one PostgreSQL memory, driven through Slack's Events API.

Each test starts two `tests.worker_driver` processes on a fresh schema, with the fake model and
the fake Slack in this process, and sends them signed HTTP events as Slack would (and as a
load balancer in front of them would spread them). What is checked is what people and the
database see: one answer per message, posted once, every turn stored whole and exactly once,
and each answer written with the thread's earlier exchanges in view.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.fakes.openai_server import FakeOpenAI, Fault, user_texts
from tests.fakes.slack_server import BOT_USER, TEAM, FakeSlack
from tests.support.postgres import PostgresSchema
from tests.support.slack import ANN, CHANNEL, event_envelope, signed_headers, thread_key
from tests.support.workers import Worker, Workers, worker_environment

START_TIMEOUT = 20.0
THREAD_WAIT = 15.0
LOST_DATABASE = "I lost touch with my memory database"

pytestmark = pytest.mark.timeout(60)


class Cluster:
    """Bot workers on one schema, the fakes they talk to, and a way to send them events."""

    def __init__(self, pg: PostgresSchema, model: FakeOpenAI, slack: FakeSlack, logs: Path) -> None:
        self.pg = pg
        self.model = model
        self.slack = slack
        environment = worker_environment(
            pg.url,
            model.base_url,
            slack.api_url,
            BOT_THREAD_WAIT=THREAD_WAIT,
            BOT_SHUTDOWN_GRACE=2,
            WORKER_UPDATE_INTERVAL=0.01,
        )
        self.workers = Workers(environment, logs, start_within=START_TIMEOUT, stop_within=5)
        self.http = aiohttp.ClientSession()
        self._events = 0

    async def start(self, count: int) -> list[Worker]:
        return await self.workers.start(count)

    async def close(self) -> None:
        await self.http.close()
        await self.workers.stop()

    # ----- Slack's side ----------------------------------------------------------------------

    def mention(self, text: str, *, thread_ts: str, ts: str | None = None) -> dict[str, Any]:
        """An `app_mention` of the bot in a channel thread (kept in the fake's history too)."""
        ts = ts or self.slack.new_ts()
        said = f"<@{BOT_USER}> {text}"
        self.slack.record_user_message(CHANNEL, said, ANN, ts, thread_ts)
        return {
            "type": "app_mention",
            "user": ANN,
            "text": said,
            "ts": ts,
            "channel": CHANNEL,
            "event_ts": ts,
            "team": TEAM,
            "thread_ts": thread_ts,
        }

    def envelope(self, event: dict[str, Any], event_id: str | None = None) -> str:
        self._events += 1
        return json.dumps(event_envelope(event, event_id or f"Ev{self._events:04d}"))

    async def post(self, worker: Worker, body: str, *, retry: int | None = None) -> None:
        """Deliver a signed Events API request, as Slack does (retries say so in headers)."""
        headers = signed_headers(body, retry=retry, reason="http_timeout")
        async with self.http.post(worker.url, data=body, headers=headers) as response:
            assert response.status == 200, await response.text()

    async def say(self, worker: Worker, text: str, *, thread_ts: str) -> str:
        """A person mentions the bot in the thread; the event goes to `worker`."""
        event = self.mention(text, thread_ts=thread_ts)
        await self.post(worker, self.envelope(event))
        return str(event["ts"])

    async def replies(self, thread_ts: str, count: int, within: float = 10.0) -> list[str]:
        """The bot's messages in the thread, once `count` are finished and stay as they are.

        A turn that fails after its answer began streaming stops the stream, then edits that
        message into the error line: "finished" alone can be a moment too early.
        """
        texts: list[str] = []
        try:
            async with asyncio.timeout(within):
                while True:
                    posted = await self.slack.wait_for_replies(CHANNEL, thread_ts, count, within)
                    if [m.text for m in posted] == texts:
                        return texts
                    texts = [m.text for m in posted]
                    await asyncio.sleep(0.2)
        except TimeoutError:
            logs = "\n".join(
                f"--- worker {n}\n{w.log_tail()}" for n, w in enumerate(self.workers.started)
            )
            seen = [m.text for m in self.slack.bot_messages(CHANNEL, thread_ts)]
            raise AssertionError(f"expected {count} replies, saw {seen}\n{logs}") from None

    async def model_called(self, times: int, within: float = 10.0) -> None:
        """Wait until the model has received `times` requests in all (answered or not)."""
        async with asyncio.timeout(within):
            while True:
                self.model.request_seen.clear()
                if len(self.model.requests) >= times:
                    return
                await self.model.request_seen.wait()

    # ----- the database ----------------------------------------------------------------------

    async def stored(self, thread_ts: str) -> list[dict[str, Any]]:
        """The thread's stored items, oldest first."""
        conn = await asyncpg.connect(self.pg.url)
        try:
            rows = await conn.fetch(
                "SELECT message_data FROM agent_messages WHERE session_id = $1 ORDER BY id",
                thread_key(CHANNEL, thread_ts),
            )
        finally:
            await conn.close()
        return [json.loads(row[0]) for row in rows]

    async def terminate_connections(
        self, workers: list[Worker], *, name: str = "memorybot%"
    ) -> int:
        """`pg_terminate_backend` on every connection these workers have to the database
        (whose application name is like `name`: `memorybot-locks` for their lock connections)."""
        ports = sorted(set().union(*(w.tcp_ports() for w in workers)))
        conn = await asyncpg.connect(self.pg.url)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                    "FROM pg_stat_activity WHERE application_name LIKE $2 "
                    "AND client_port = ANY($1::int[])",
                    ports,
                    name,
                )
            )
        finally:
            await conn.close()


@pytest.fixture
async def cluster(postgres: PostgresSchema, slack: FakeSlack, tmp_path: Path):
    async with FakeOpenAI(latency=0.05) as model:
        bots = Cluster(postgres, model, slack, tmp_path)
        try:
            yield bots
        finally:
            await bots.close()


def said(text: str) -> str:
    """A person's message as stored and as the model reads it."""
    return f"[Ann] {text}"


def roles(items: list[dict[str, Any]]) -> list[Any]:
    return [item.get("role") for item in items]


def content(item: dict[str, Any]) -> str:
    value = item.get("content")
    if isinstance(value, list):
        return "".join(str(part.get("text", "")) for part in value)
    return str(value)


def thread_root(cluster: Cluster) -> str:
    """A thread in the channel, started by a person mentioning the bot."""
    root = cluster.slack.new_ts()
    cluster.slack.record_user_message(CHANNEL, f"<@{BOT_USER}> a thread", ANN, root)
    return root


# ----- the tests -----------------------------------------------------------------------------


async def test_concurrent_messages_to_one_thread_are_serialised_across_workers(
    cluster: Cluster,
) -> None:
    workers = await cluster.start(2)
    root = thread_root(cluster)
    texts = [f"message {n}" for n in range(6)]
    # All at once, alternately to each worker, as a load balancer would spread them.
    await asyncio.gather(
        *(cluster.say(workers[n % 2], text, thread_ts=root) for n, text in enumerate(texts))
    )
    posted = await cluster.replies(root, len(texts))
    await asyncio.sleep(0.3)  # anything posted twice would show up by now
    assert len(cluster.slack.bot_messages(CHANNEL, root)) == len(texts)

    items = await cluster.stored(root)
    assert roles(items) == ["user", "assistant"] * len(texts)
    asked = [content(item) for item in items[::2]]
    assert sorted(asked) == sorted(said(text) for text in texts)  # each stored exactly once
    for n, answer in enumerate(items[1::2]):
        # The fake model answers from the history it was sent: every earlier exchange.
        earlier = "; ".join(asked[:n]) or "nothing"
        assert content(answer) == f"You said: {asked[n]}. Before that: {earlier}."
    assert sorted(posted) == sorted(content(answer) for answer in items[1::2])

    requests = sorted(cluster.model.requests, key=lambda r: r.started)
    assert [user_texts(r.messages) for r in requests] == [asked[: n + 1] for n in range(6)]
    for before, after in itertools.pairwise(requests):
        assert before.finished is not None
        assert after.started >= before.finished, "two turns of one thread ran at once"


async def test_a_redelivered_event_is_answered_once_by_either_worker(cluster: Cluster) -> None:
    workers = await cluster.start(2)
    root = thread_root(cluster)
    body = cluster.envelope(cluster.mention("hello once", thread_ts=root), event_id="EvSAME")
    # Slack retried before the first delivery was acknowledged, and the balancer sent the
    # retry to the other worker.
    await asyncio.gather(cluster.post(workers[0], body), cluster.post(workers[1], body, retry=1))
    assert await cluster.replies(root, 1) == ["You said: [Ann] hello once. Before that: nothing."]
    await cluster.post(workers[1], body, retry=2)  # and once more, after the answer
    await cluster.post(workers[0], body, retry=3)
    await asyncio.sleep(0.5)

    assert len(cluster.slack.bot_messages(CHANNEL, root)) == 1
    assert len(cluster.model.requests) == 1
    items = await cluster.stored(root)
    assert [(item.get("role"), content(item)) for item in items] == [
        ("user", said("hello once")),
        ("assistant", "You said: [Ann] hello once. Before that: nothing."),
    ]


async def test_a_worker_killed_mid_turn_frees_its_thread_at_once(cluster: Cluster) -> None:
    first, second = await cluster.start(2)
    root = thread_root(cluster)
    await cluster.say(first, "before the crash", thread_ts=root)
    await cluster.replies(root, 1)

    cluster.model.fail_next(Fault(delay=30))  # the next answer takes far longer than the test
    seen = len(cluster.model.requests)
    await cluster.say(first, "lost in the crash", thread_ts=root)
    await cluster.model_called(seen + 1)
    first.process.send_signal(signal.SIGKILL)
    await first.process.wait()

    started = time.monotonic()
    await cluster.say(second, "after the crash", thread_ts=root)
    posted = await cluster.replies(root, 2, within=THREAD_WAIT)
    waited = time.monotonic() - started
    assert waited < THREAD_WAIT / 3, f"the thread stayed locked for {waited:.1f}s after the crash"
    expected = "You said: [Ann] after the crash. Before that: [Ann] before the crash."
    assert posted[1] == expected

    items = await cluster.stored(root)
    # The killed turn left nothing behind: no message without its answer.
    assert roles(items) == ["user", "assistant"] * 2
    assert [content(item) for item in items[::2]] == [
        said("before the crash"),
        said("after the crash"),
    ]
    assert content(items[3]) == expected
    assert second.running


async def test_dropped_database_connections_cost_one_turn_and_nothing_else(
    cluster: Cluster,
) -> None:
    first, second = await cluster.start(2)
    root = thread_root(cluster)
    await cluster.say(first, "remember this", thread_ts=root)
    await cluster.replies(root, 1)

    cluster.model.fail_next(Fault(delay=1.5))  # long enough to cut the database meanwhile
    seen = len(cluster.model.requests)
    await cluster.say(first, "this one is cut off", thread_ts=root)
    await cluster.model_called(seen + 1)
    # Its pooled connections and the one holding every thread lock of the worker.
    assert await cluster.terminate_connections([first, second]) >= 2

    posted = await cluster.replies(root, 2)
    assert LOST_DATABASE in posted[1]
    assert [content(item) for item in await cluster.stored(root)] == [
        said("remember this"),
        "You said: [Ann] remember this. Before that: nothing.",
    ]

    await cluster.say(first, "and now?", thread_ts=root)
    await cluster.say(second, "and here?", thread_ts=root)
    posted = await cluster.replies(root, 4)
    items = await cluster.stored(root)
    assert roles(items) == ["user", "assistant"] * 3
    assert [content(item) for item in items[::2]] in (
        [said("remember this"), said("and now?"), said("and here?")],
        [said("remember this"), said("and here?"), said("and now?")],
    )
    assert sorted(posted[2:]) == sorted(content(item) for item in items[3::2])
    assert first.running
    assert second.running


async def test_a_turn_whose_lock_was_lost_is_not_stored_once_another_worker_took_the_thread(
    cluster: Cluster,
) -> None:
    first, second = await cluster.start(2)
    root = thread_root(cluster)
    await cluster.say(first, "before", thread_ts=root)
    await cluster.replies(root, 1)

    cluster.model.fail_next(Fault(delay=3))  # the first worker's turn waits on the model
    seen = len(cluster.model.requests)
    await cluster.say(first, "planned under a lost lock", thread_ts=root)
    await cluster.model_called(seen + 1)
    # The connection holding every thread lock of the first worker, and nothing else.
    assert await cluster.terminate_connections([first], name="memorybot-locks") == 1
    started = time.monotonic()
    await cluster.say(second, "taken over", thread_ts=root)
    posted = await cluster.replies(root, 3, within=THREAD_WAIT)
    assert time.monotonic() - started < THREAD_WAIT / 3  # the thread was free at once

    taken_over = "You said: [Ann] taken over. Before that: [Ann] before."
    # Its person is told; the other worker's turn is answered.
    assert sorted(LOST_DATABASE in text for text in posted[1:]) == [False, True]
    assert taken_over in posted
    # Only whole turns, none interleaved, and nothing of the one whose lock was lost.
    items = await cluster.stored(root)
    assert roles(items) == ["user", "assistant"] * 2
    assert [content(item) for item in items] == [
        said("before"),
        "You said: [Ann] before. Before that: nothing.",
        said("taken over"),
        taken_over,
    ]

    # The first worker opened its lock connection again and serves the thread as before.
    await cluster.say(first, "and now?", thread_ts=root)
    posted = await cluster.replies(root, 4)
    assert posted[3] == ("You said: [Ann] and now?. Before that: [Ann] before; [Ann] taken over.")
    assert first.running
