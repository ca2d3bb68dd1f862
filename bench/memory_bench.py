"""Long-thread memory benchmark: one long thread through the core, what each request carries.

    .venv/bin/python -m bench.memory_bench [--turns 300] [--context 32000]

A thread of `--turns` messages of mixed sizes (mostly short chat, some paragraphs, every so
often a log paste of 6,000-10,000 characters) goes through the real core and the real openai
client against the fake model, which has a context window of `--context` tokens, counts and
reports tokens and prompt-cache hits, and writes summaries when asked. It prints:

- turns answered, and the largest request against the budget;
- the mean share of each request that repeats the previous request byte for byte (its prefix),
  after the first summary (that is, once the window has filled), and the share of input tokens
  the fake reports as cached (OpenAI's rule: from 1,024 tokens, in steps of 128);
- summary calls per 100 turns;
- tokens sent per turn (mean and max), against the same thread under the old policy (the
  newest 50 items, no summary), computed with the same token counter;
- the time memory planning takes per turn, as a share of the turn, on turns with no summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.agent import agent_instructions, build_client
from bot.app import build_core
from bot.config import Config
from bot.core import Core
from bot.memory.exchanges import align_to_exchange
from bot.memory.planner import MemoryPlanner, Plan
from bot.memory.transcript import item_text
from bot.messages import IncomingMessage, ReplyKind, Surface
from bot.storage import Author, SQLiteStore
from tests.fakes.openai_server import (
    MESSAGE_OVERHEAD,
    FakeOpenAI,
    RequestRecord,
    cached_tokens,
    count_tokens,
    shared_prefix_share,
    user_texts,
)

THREAD = "bench:long"
OLD_WINDOW = 50
WORDS = [
    "the",
    "deploy",
    "cache",
    "worker",
    "queue",
    "token",
    "budget",
    "summary",
    "thread",
    "index",
    "window",
    "retry",
]


def brief(messages: list[dict[str, Any]]) -> str:
    """Short answers, with a paragraph now and then, as chat answers are."""
    said = user_texts(messages)
    if any("running summary" in str(m.get("content")) for m in messages[:1]):
        return "Summary: " + " ".join(s[:80] for s in said)[:2_000]
    last = said[-1] if said else ""
    extra = " ".join(WORDS) * 3 if len(last) % 4 == 0 else ""
    return f"Noted: {last[:100]} {extra}".strip()


def messages(turns: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for turn in range(turns):
        if turn % 15 == 7:
            lines = [
                f"{turn}:{n} INFO {rng.choice(WORDS)} took {rng.randint(1, 999)} ms"
                for n in range(400)
            ]
            texts.append("Here is the log:\n" + "\n".join(lines)[: rng.randint(6_000, 10_000)])
        elif turn % 5 == 2:
            texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(150, 300))))
        else:
            texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 40))))
    return texts


def prompt_of(record: RequestRecord) -> str:
    return json.dumps(record.body.get("tools") or []) + json.dumps(
        record.messages, ensure_ascii=False
    )


class TimedPlanner(MemoryPlanner):
    """The bot's planner, timing itself."""

    def __init__(self, inner: MemoryPlanner) -> None:
        self.__dict__.update(inner.__dict__)
        self.seconds: list[float] = []

    async def plan(
        self, session_id: str, author: Author, text: str, *, extra_tokens: int = 0
    ) -> Plan:
        started = time.perf_counter()
        try:
            return await super().plan(session_id, author, text, extra_tokens=extra_tokens)
        finally:
            self.seconds.append(time.perf_counter() - started)


async def old_policy(store: SQLiteStore, instructions: str, turns: int) -> list[tuple[int, int]]:
    """(tokens, cached tokens) each turn would have sent with the newest 50 items, no summary."""
    stored = [s.item for s in await store.history(THREAD, limit=10**9)]
    users = [i for i, item in enumerate(stored) if item.get("role") == "user"]
    sizes = []
    previous = ""
    for index in users[:turns]:
        window = align_to_exchange(stored[max(0, index - OLD_WINDOW) : index])
        sent = [{"role": "system", "content": instructions}]
        sent += [{"role": i["role"], "content": item_text(i)} for i in [*window, stored[index]]]
        prompt = "[]" + json.dumps(sent, ensure_ascii=False)
        tokens = count_tokens(prompt) + MESSAGE_OVERHEAD * len(sent)
        sizes.append((tokens, cached_tokens(prompt, previous)))
        previous = prompt
    return sizes


async def run(args: argparse.Namespace, workdir: Path) -> None:
    async with FakeOpenAI(brief, context_window=args.context) as fake:
        config = Config(
            openai_api_key="sk-bench",
            openai_base_url=fake.base_url,
            model="fake-model",
            model_api="chat_completions",
            model_retries=0,
            db_path=str(workdir / "memory.sqlite3"),
            rate_limit_per_minute=0,
            context_tokens=args.context,
        )
        client = build_client(config)
        store = await SQLiteStore.open(config.db_path)
        core: Core = build_core(config, store, client)
        timed = TimedPlanner(
            core._profiles.default.attempts.planner
        )  # bench-only: time the planner turns use
        core._profiles.default.attempts.planner = timed
        surface = Surface(max_chars=4000)
        turn_seconds: list[float] = []
        summary_turns: set[int] = set()
        answered = 0
        try:
            for turn, text in enumerate(messages(args.turns)):
                before = len(fake.requests)
                started = time.perf_counter()
                reply = await core.handle(
                    IncomingMessage("bench", THREAD, "u1", "Ann", text), surface
                )
                turn_seconds.append(time.perf_counter() - started)
                answered += reply.kind is ReplyKind.ANSWER
                await core.idle()
                if len(fake.requests) > before + 1:
                    summary_turns.add(turn)
            instructions = agent_instructions(config)
            old = await old_policy(store, str(instructions), args.turns)
        finally:
            await store.close()
            await client.close()

    turns = [r for r in fake.requests if "running summary" not in str(r.messages[0])]
    summaries = len(fake.requests) - len(turns)
    first_summary = min(summary_turns, default=len(turns))
    shares = []
    for index in range(first_summary + 1, len(turns)):
        previous, current = prompt_of(turns[index - 1]), prompt_of(turns[index])
        shares.append(shared_prefix_share(current, previous))
    after = turns[first_summary + 1 :]
    cached = sum(r.cached_tokens for r in after) / max(1, sum(r.prompt_tokens for r in after))
    sent = [r.prompt_tokens for r in turns]
    new = [r.prompt_tokens - r.cached_tokens for r in fake.requests]  # summaries included
    old_sent = [tokens for tokens, _ in old]
    old_new = [tokens - cached for tokens, cached in old]
    plain = [
        timed.seconds[i] / turn_seconds[i]
        for i in range(len(turn_seconds))
        if i not in summary_turns
    ]
    rows = [
        ("turns answered", f"{answered} / {args.turns}"),
        ("largest request", f"{max(sent):,} tokens = {max(sent) / args.context:.2f} of budget"),
        (
            "prefix repeated, mean share",
            f"{statistics.mean(shares):.2f} (target >= 0.80), {len(shares)} requests after "
            "the first summary",
        ),
        ("input tokens billed as cached", f"{cached:.2f} (OpenAI's 1,024/128 rule)"),
        ("summary calls per 100 turns", f"{summaries * 100 / args.turns:.1f} (target <= 20)"),
        ("tokens sent per turn, mean / max", f"{statistics.mean(sent):,.0f} / {max(sent):,}"),
        (
            "same thread, newest 50 items",
            f"{statistics.mean(old_sent):,.0f} / {max(old_sent):,} "
            f"({sum(o > args.context for o in old_sent)} of {len(old)} over the context)",
        ),
        (
            "uncached input tokens per turn",
            f"{sum(new) / args.turns:,.0f} (summaries included) vs "
            f"{statistics.mean(old_new):,.0f} with the newest 50 items",
        ),
        (
            "memory planning per turn",
            f"{statistics.mean(timed.seconds) * 1e3:.2f} ms = {statistics.mean(plain):.1%} "
            "of a turn without a summary (target <= 5%)",
        ),
    ]
    print(f"thread of {args.turns} turns, budget {args.context:,} tokens (the fake's context)")
    for label, value in rows:
        print(f"  {label + ':':<36}{value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--context", type=int, default=32_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(run(args, Path(workdir)))


if __name__ == "__main__":
    main()
