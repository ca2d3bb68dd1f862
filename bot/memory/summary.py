"""The rolling summary: folding what leaves a thread's window into a short running account.

Summaries are made in the background after a turn is answered, at most one at a time per
thread, so they never delay or fail anyone's turn. A failed attempt is logged and tried again
after a pause that doubles each time; until then the previous summary stays in use.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from agents import Agent, RunConfig, Runner

from ..errors import EmptyAnswerError
from ..storage import Store, Usage, WindowItem
from .exchanges import fit_exchanges, is_user_message
from .meter import UsageMeter
from .planner import HIGH_WATER, LOW_WATER, MemoryPlanner
from .transcript import summary_input

logger = logging.getLogger(__name__)

SUMMARY_INSTRUCTIONS: Final = (
    "You keep the running summary of a long chat conversation between people and an AI "
    "assistant, so the assistant can keep following it after older messages leave its view. "
    "You get the current summary (possibly none) and the next part of the conversation. "
    "Write the new summary: the current one, updated with what the new part adds. Keep every "
    "name, number, code, date, link, decision, commitment and open question exactly as "
    "written, and say who said what. Leave out greetings and small talk. Use short plain "
    "sentences or bullet points, at most {words} words, and write nothing but the summary."
)
MAX_ROUNDS: Final = 3
"""Summary calls one catch-up may make; a longer backlog continues after the next turn."""
FIRST_RETRY: Final = 30.0
LAST_RETRY: Final = 900.0


class Summarizer:
    """Makes one new summary from the previous one and a block of conversation."""

    def __init__(
        self,
        agent: Agent[Any],
        run_config: RunConfig,
        *,
        bot_name: str,
        model: str | None,
        profile: str | None = None,
    ) -> None:
        self._agent = agent
        self._run_config = run_config
        self._bot_name = bot_name
        self._model = model
        self._profile = profile

    async def summarize(
        self, previous: str | None, items: Sequence[WindowItem], *, item_chars: int
    ) -> tuple[str, Usage]:
        """The new summary text and what making it cost."""
        prompt = summary_input(
            previous,
            [stored.item for stored in items],
            bot_name=self._bot_name,
            item_chars=item_chars,
        )
        meter = UsageMeter()
        result = await Runner.run(self._agent, prompt, run_config=self._run_config, hooks=meter)
        text = str(result.final_output or "").strip()
        if not text:
            raise EmptyAnswerError("the summary came back empty")
        return text, meter.usage(result.context_wrapper.usage, self._model, self._profile)


class SummaryKeeper:
    """Keeps each thread's summary caught up with its window, in the background."""

    def __init__(
        self,
        store: Store,
        planner: MemoryPlanner,
        summarizer: Summarizer,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._planner = planner
        self._summarizer = summarizer
        self._clock = clock
        self._running: dict[str, asyncio.Task[None]] = {}
        self._backoff: dict[str, tuple[float, float]] = {}  # session -> (retry at, pause)

    def request(self, session_id: str) -> None:
        """Bring the thread's summary up to date soon, unless that is already under way."""
        if session_id in self._running:
            return
        retry = self._backoff.get(session_id)
        if retry is not None and self._clock() < retry[0]:
            return
        task = asyncio.create_task(self._catch_up(session_id), name=f"summary {session_id}")
        self._running[session_id] = task
        task.add_done_callback(lambda _: self._running.pop(session_id, None))

    async def settle(self) -> None:
        """Wait for every summary under way (tests and benchmarks)."""
        while self._running:
            await asyncio.wait(list(self._running.values()))

    async def close(self) -> None:
        """Stop summaries under way; nothing is half-stored, and the next start catches up."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _catch_up(self, session_id: str) -> None:
        try:
            # Another worker that finished a turn in the thread may be summarising it already:
            # one of them pays for the summary, and the other's next turn reads it.
            async with self._store.claim_summary(session_id) as ours:
                if not ours:
                    logger.debug("Another worker is summarising %s", session_id)
                    return
                for _ in range(MAX_ROUNDS):
                    if not await self.fold(session_id):
                        break
        except Exception as exc:
            pause = min(LAST_RETRY, 2 * self._backoff.get(session_id, (0.0, FIRST_RETRY / 2))[1])
            self._backoff[session_id] = (self._clock() + pause, pause)
            logger.warning(
                "Summarising %s failed (%s: %s); the previous summary stays in use, "
                "retrying after %.0fs",
                session_id,
                type(exc).__name__,
                exc,
                pause,
            )
        else:
            self._backoff.pop(session_id, None)

    async def fold(self, session_id: str) -> bool:
        """Fold the oldest part of the window into the summary, once; says if it did.

        Everything after the summary except the newest exchanges (up to the low-water mark) is
        folded, oldest first, as much as one call can read; the caller repeats for the rest.
        """
        summary, ratio = await self._planner.state(session_id)
        after = summary.covers_id if summary else 0
        budget = self._planner.history_chars(ratio)
        recent, complete = await self._store.read_window(
            session_id, after_id=after, max_chars=int(HIGH_WATER * budget)
        )
        if complete and sum(stored.chars for stored in recent) <= HIGH_WATER * budget:
            return False
        kept = fit_exchanges(recent, int(LOW_WATER * budget)) or _last_exchange(recent)
        if not kept:
            return False
        block = _whole_exchanges(
            await self._store.read_range(
                session_id, after_id=after, before_id=kept[0].id, max_chars=budget
            ),
            budget,
        )
        if not block:
            return False
        text, usage = await self._summarizer.summarize(
            summary.text if summary else None, block, item_chars=max(1_000, budget // 4)
        )
        await self._store.record_usage(session_id, usage, kind="summary")
        saved = await self._store.save_summary(
            session_id,
            text,
            covers_id=block[-1].id,
            replaces=summary.covers_id if summary else None,
        )
        if not saved:
            logger.info(
                "The summary of %s changed under it (/undo or /forget); dropped", session_id
            )
        return saved


def _last_exchange(items: Sequence[WindowItem]) -> list[WindowItem]:
    """The newest exchange whatever its size: the window always keeps at least that."""
    for index in range(len(items) - 1, -1, -1):
        if is_user_message(items[index].item):
            return list(items[index:])
    return []


def _whole_exchanges(block: list[WindowItem], max_chars: int) -> list[WindowItem]:
    """`block` without a trailing partial exchange, when it was cut at `max_chars`.

    A block that is one exchange too long to read whole is kept: its messages are clipped
    when the summary call reads them.
    """
    if sum(stored.chars for stored in block) <= max_chars:
        return block
    for index in range(len(block) - 1, 0, -1):
        if is_user_message(block[index].item):
            return block[:index]
    return block
