"""What the model sees of a thread: a token budget, a rolling summary, a window moving in steps.

A request carries the instructions, the thread's summary (what scrolled out of view), the
window (the newest whole exchanges, verbatim) and the new message, with room left for the
answer. Tokens are never counted with a tokenizer (they need files from the internet, and
every model counts differently): each thread's past requests say how many tokens its stored
characters turned out to be, and before the first measurement a cautious figure is used.

The window starts right after what the summary covers and only grows, so each request repeats
the previous one byte for byte and adds to its end: providers bill such a repeated prefix at a
fraction of the price. When the window passes a high-water mark, a new summary folds its older
part in, in the background; the window then starts later in one step, down to a low-water
mark, and grows again for many turns. Only if the window outgrows the whole budget before that
(the summary is slow or failing) is it cut to the newest exchanges that fit, for that turn.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cachetools import LRUCache

from ..config import MIN_HISTORY_TOKENS
from ..storage import Author, Item, Store, Summary, Usage, WindowItem
from .exchanges import fit_exchanges
from .transcript import user_item

logger = logging.getLogger(__name__)

DEFAULT_TOKENS_PER_CHAR: Final = 0.4
"""Before a thread has been measured: cautious for code and non-Latin text (stored as JSON,
English runs near 0.25)."""
SAFETY: Final = 1.1
"""Measured figures are averages; a request a little denser than average must still fit."""
HIGH_WATER: Final = 0.7
"""Share of the history budget at which the window's older part is summarised."""
LOW_WATER: Final = 0.25
"""Share of the history budget the window keeps verbatim after a summary step."""
MESSAGE_SHARE: Final = 0.5
"""The most of the history budget one new message may take; longer ones are cut."""
DENSITY_WEIGHT: Final = 0.2
"""How much one finished turn moves a thread's remembered tokens-per-character figure."""
REMEMBERED_THREADS: Final = 10_000
"""Threads whose figure is kept in memory; others read it back from their stored usage."""
SHRINK: Final = 0.75
"""What the budget is multiplied by when the model refuses a request without saying its limit."""
_STATED_LIMIT = re.compile(r"maximum context length is (\d+)")
SUMMARY_HEADING: Final = (
    "Summary of the earlier conversation (older messages are not shown above; "
    "search_thread finds their exact words):"
)


@dataclass(frozen=True)
class MemorySettings:
    """The budget, from configuration."""

    context_tokens: int
    output_reserve: int
    summary_tokens: int
    max_input_chars: int


@dataclass(frozen=True)
class Plan:
    """One turn's request, decided before the model is called."""

    window: list[WindowItem]
    summary: Summary | None
    instructions: str
    item: Item
    """The new message as the model will get it (cut to fit, if it had to be)."""
    kept_chars: int | None
    """How much of the message was kept when it was cut; None when it was not."""
    estimated_tokens: int
    needs_summary: bool


@dataclass(frozen=True)
class MemoryView:
    """What the model currently carries of a thread, for people to see (`/memory`)."""

    summary: Summary | None
    summarized_messages: int
    verbatim_messages: int
    verbatim_tokens: int
    """Estimated tokens of the verbatim part."""
    budget_tokens: int


class MemoryPlanner:
    """Plans each turn's request for a thread and knows when its summary is due."""

    def __init__(
        self,
        store: Store,
        settings: MemorySettings,
        *,
        instructions: str,
        fixed_chars: int = 0,
    ) -> None:
        """
        Args:
            store: The threads' memory.
            settings: The budget.
            instructions: The agent's instructions, to which the summary is added.
            fixed_chars: What every request carries besides the instructions (tool schemas).
        """
        self._store = store
        self._settings = settings
        self._context_tokens = settings.context_tokens  # lowered if the model says otherwise
        # Each thread's tokens per character, kept up to date from the turns this process
        # runs: an estimate, so a figure another process would refine is still good enough,
        # and reading it back from the stored usage on every turn cost the store's reads ~2x.
        self._density: LRUCache[str, float] = LRUCache(maxsize=REMEMBERED_THREADS)
        self._instructions = instructions
        self._fixed_chars = fixed_chars + len(instructions) + len(SUMMARY_HEADING) + 4

    async def state(self, session_id: str) -> tuple[Summary | None, float]:
        """The thread's summary and its density: measured with a margin, or the cautious default."""
        read = await self._store.read_memory(session_id)
        measured = read.tokens_per_char
        return read.summary, (measured * SAFETY if measured else DEFAULT_TOKENS_PER_CHAR)

    def history_chars(self, tokens_per_char: float) -> int:
        """Characters of summary-free history plus new message one request can carry."""
        tokens = (
            self._context_tokens - self._settings.output_reserve - self._settings.summary_tokens
        )
        return max(0, int(tokens / tokens_per_char) - self._fixed_chars)

    @property
    def context_tokens(self) -> int:
        """The budget in use: the configured one, or less if the model refused it."""
        return self._context_tokens

    def model_refused(self, estimated_tokens: int, error: str) -> None:
        """Learn from a request the model refused as too long, so the next ones fit.

        The model's stated limit is used when the error gives one and it is below the budget
        (the budget was set above the model's context); otherwise the estimate was off for
        this kind of text, and the budget shrinks by a quarter. Later turns keep the lower
        budget until the bot restarts, so one refusal costs one retry, not one per turn.
        """
        stated = _STATED_LIMIT.search(error)
        limit = int(stated.group(1)) if stated else 0
        lowered = limit if 0 < limit < self._context_tokens else int(self._context_tokens * SHRINK)
        floor = self._settings.output_reserve + self._settings.summary_tokens + MIN_HISTORY_TOKENS
        self._context_tokens = max(floor, lowered)
        logger.warning(
            "The model refused a request of about %d tokens as too long; using a budget of %d "
            "tokens from now on (set BOT_CONTEXT_TOKENS to at most the model's context)",
            estimated_tokens,
            self._context_tokens,
        )

    def instructions_with(self, summary: Summary | None) -> str:
        """The instructions for a request, with the summary where there is one.

        Exactly the same text for as long as the summary stays the same, so the prompt's
        prefix does too.
        """
        if summary is None:
            return self._instructions
        return f"{self._instructions}\n\n{SUMMARY_HEADING}\n{summary.text}"

    async def plan(
        self, session_id: str, author: Author, text: str, *, extra_tokens: int = 0
    ) -> Plan:
        """Choose what the model sees for one new message.

        Args:
            session_id: The thread.
            author: Who wrote the message.
            text: The message.
            extra_tokens: What the message carries beyond its text (images), kept free.
        """
        known = self._density.get(session_id)
        read = await self._store.read_memory(session_id, density=known is None)
        measured = known if known is not None else read.tokens_per_char
        if known is None and measured is not None:
            self._density[session_id] = measured
        summary = read.summary
        ratio = measured * SAFETY if measured else DEFAULT_TOKENS_PER_CHAR
        budget = self.history_chars(ratio)
        item, message_chars, kept = self._fit_message(author, text, int(budget * MESSAGE_SHARE))
        summary_room = int(self._settings.summary_tokens / ratio) - _summary_chars(summary)
        capacity = max(0, budget + summary_room - message_chars - int(extra_tokens / ratio))
        items, full = _newest(read.newest, capacity)
        if not full and read.continue_below is not None:
            older, complete = await self._store.read_window(
                session_id,
                after_id=summary.covers_id if summary else 0,
                before_id=read.continue_below,
                max_chars=capacity - sum(stored.chars for stored in items),
            )
            items, full = older + items, not complete
        total = sum(stored.chars for stored in items)
        window = items if not full and summary is None else fit_exchanges(items, capacity)
        estimate = self._fixed_chars + _summary_chars(summary) + message_chars
        estimate += sum(stored.chars for stored in window)
        return Plan(
            window=window,
            summary=summary,
            instructions=self.instructions_with(summary),
            item=item,
            kept_chars=kept,
            estimated_tokens=int(estimate * ratio) + extra_tokens,
            needs_summary=full or total > HIGH_WATER * budget,
        )

    def measured(self, session_id: str, usage: Usage) -> None:
        """Fold a finished turn's reported usage into the thread's tokens-per-character figure."""
        if usage.input_tokens <= 0 or usage.input_chars <= 0:
            return
        figure = usage.input_tokens / usage.input_chars
        known = self._density.get(session_id)
        self._density[session_id] = (
            figure if known is None else known + (figure - known) * DENSITY_WEIGHT
        )

    async def view(self, session_id: str) -> MemoryView:
        """The thread's summary and the size of its verbatim window, as the next turn sees them."""
        summary, ratio = await self.state(session_id)
        after = summary.covers_id if summary else 0
        budget = self.history_chars(ratio)
        read, complete = await self._store.read_window(session_id, after_id=after, max_chars=budget)
        window = read if complete else fit_exchanges(read, budget)
        said = [stored for stored in window if stored.item.get("role") in ("user", "assistant")]
        return MemoryView(
            summary=summary,
            summarized_messages=(
                await self._store.count_messages(session_id, up_to=after) if summary else 0
            ),
            verbatim_messages=len(said),
            verbatim_tokens=int(sum(stored.chars for stored in window) * ratio),
            budget_tokens=self._context_tokens,
        )

    def _fit_message(self, author: Author, text: str, limit: int) -> tuple[Item, int, int | None]:
        """The message as an item within `limit` stored characters, its size, and how much
        of the text was kept when it had to be cut."""
        keep = min(len(text), self._settings.max_input_chars)
        item = dict(user_item(author, text[:keep]))
        size = _chars(item)
        if size > limit:
            # JSON escapes make the stored form longer than the text; cut in proportion.
            overhead = _chars(dict(user_item(author, "")))
            keep = max(0, int(keep * (limit - overhead) / (size - overhead)))
            item = dict(user_item(author, text[:keep]))
            size = _chars(item)
        return item, size, (keep if keep < len(text) else None)


def _newest(items: Sequence[WindowItem], max_chars: int) -> tuple[list[WindowItem], bool]:
    """The newest of `items` up to the first that takes the total past `max_chars` (included),
    and whether that limit was reached."""
    total = 0
    for index in range(len(items) - 1, -1, -1):
        total += items[index].chars
        if total > max_chars:
            return list(items[index:]), True
    return list(items), False


def _chars(item: Item) -> int:
    """An item's size as stored (the same measure the window and the meter use)."""
    return len(json.dumps(item))


def _summary_chars(summary: Summary | None) -> int:
    return len(summary.text) if summary else 0
