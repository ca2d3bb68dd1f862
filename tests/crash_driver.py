"""A bot process for the crash test: many conversations writing at once until it is killed.

    python -m tests.crash_driver DB_PATH MODEL_BASE_URL CONVERSATIONS

After each reply is returned by the core (the moment an adapter would send it to the platform)
it prints `DELIVERED <session> <turn>`; the test kills the process with SIGKILL mid-stream and
checks that every delivered reply is in the store.
"""

from __future__ import annotations

import asyncio
import sys

from bot.agent import build_client
from bot.app import build_core
from bot.config import Config
from bot.messages import IncomingMessage, ReplyKind, Surface
from bot.storage import SQLiteStore


async def main(db_path: str, base_url: str, conversations: int) -> None:
    config = Config(
        openai_api_key="sk-crash-test",
        openai_base_url=base_url,
        model="fake-model",
        model_api="chat_completions",
        model_retries=0,
        db_path=db_path,
        max_concurrency=conversations,
        rate_limit_per_minute=0,
    )
    client = build_client(config)
    store = await SQLiteStore.open(db_path)
    core = build_core(config, store, client)

    async def converse(n: int) -> None:
        session = f"crash:{n}"
        for turn in range(1_000_000):
            message = IncomingMessage("crash", session, "u", "Ann", f"message {turn}")
            reply = await core.handle(message, Surface())
            if reply is not None and reply.kind is ReplyKind.ANSWER:
                sys.stdout.write(f"DELIVERED {session} {turn}\n")
                sys.stdout.flush()

    await asyncio.gather(*(converse(n) for n in range(conversations)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
