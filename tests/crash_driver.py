"""A bot process for the crash tests, killed by them with SIGKILL at the worst moment.

    python -m tests.crash_driver DB_PATH MODEL_BASE_URL CONVERSATIONS
    python -m tests.crash_driver approved MEMORY MODEL_BASE_URL

The first runs many conversations writing at once until it is killed. After each reply is
returned by the core (the moment an adapter would send it to the platform) it prints
`DELIVERED <session> <turn>`; the test kills the process with SIGKILL mid-stream and checks
that every delivered reply is in the store.

The second (`approved`, on the memory at MEMORY: a SQLite path or a PostgreSQL URL) asks for
`delete_ticket`, a tool that needs approval, in thread `APPROVED_THREAD`, shows its prompt at
the address "prompt-1" and prints `PROMPT <approval ID>`, approves it as its asker would, and
prints `RUNNING <ticket>` from inside the tool, which then never returns: the test kills the
process inside the call.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Final

from agents import function_tool

from bot.agent import build_client
from bot.app import build_core
from bot.config import Config
from bot.messages import Decision, IncomingMessage, ReplyKind, Surface
from bot.storage import SQLiteStore, open_store

APPROVED_PLATFORM: Final = "crash"
APPROVED_THREAD: Final = "crash:approved"
ASKER: Final = ("id-Ann", "Ann")


def _config(memory: str, base_url: str, *, max_concurrency: int = 8) -> Config:
    """Settings for the fake model at `base_url` and the memory at `memory` (a SQLite path
    or a PostgreSQL URL)."""
    url = "://" in memory
    return Config(
        openai_api_key="sk-crash-test",
        openai_base_url=base_url,
        model="fake-model",
        model_api="chat_completions",
        model_retries=0,
        db_path="memory.sqlite3" if url else memory,
        database_url=memory if url else None,
        max_concurrency=max_concurrency,
        rate_limit_per_minute=0,
    )


async def main(db_path: str, base_url: str, conversations: int) -> None:
    config = _config(db_path, base_url, max_concurrency=conversations)
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


async def approved(memory: str, base_url: str) -> None:
    @function_tool(needs_approval=True)
    async def delete_ticket(ticket: str) -> str:
        """Delete a ticket for good.

        Args:
            ticket: The ticket's ID.
        """
        sys.stdout.write(f"RUNNING {ticket}\n")
        sys.stdout.flush()
        await asyncio.Event().wait()  # the kill comes while the call runs
        return f"Ticket {ticket} deleted."

    config = _config(memory, base_url)
    client = build_client(config)
    store = await open_store(config.memory_location)
    core = build_core(config, store, client, tools=[delete_ticket])
    user_id, name = ASKER
    message = IncomingMessage(APPROVED_PLATFORM, APPROVED_THREAD, user_id, name, "delete T-7")
    reply = await core.handle(message, Surface())
    assert reply.approval is not None, reply
    await core.approval_posted(reply.approval.approval_id, "prompt-1")
    sys.stdout.write(f"PROMPT {reply.approval.approval_id}\n")
    sys.stdout.flush()
    await core.decide(reply.approval.approval_id, Decision.APPROVE, user_id=user_id, user_name=name)
    raise AssertionError("the approved call returned; it should have been killed inside it")


if __name__ == "__main__":
    if sys.argv[1] == "approved":
        asyncio.run(approved(sys.argv[2], sys.argv[3]))
    else:
        asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
