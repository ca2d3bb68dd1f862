"""`search_thread`: the agent's tool for finding exact words anywhere in the thread it is in.

A summary keeps the gist; this keeps the details (the number, name or link from hundreds of
messages ago). The thread comes from the run's context, set by the core for each turn, never
from the model's arguments, so a search can only ever see its own thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from agents import FunctionTool, RunContextWrapper, function_tool

from ..storage import Store
from .transcript import describe

SEARCH_TOOL: Final = "search_thread"
SEARCH_NOTE: Final = (
    "You only see the newest part of a long conversation. When someone refers to something "
    "said earlier that you cannot see (an exact number, name, code, link or decision), call "
    "search_thread with a few distinctive words before answering, rather than guessing."
)


@dataclass(frozen=True)
class TurnContext:
    """What tools may know about the turn they run in."""

    session_id: str


def search_thread_tool(
    store: Store, *, bot_name: str, results: int = 8, result_chars: int = 600
) -> FunctionTool:
    """The `search_thread` tool over `store`."""

    async def search_thread(ctx: RunContextWrapper[TurnContext], query: str) -> str:
        """Search this conversation's whole history for messages containing some words.

        Args:
            query: A few distinctive words to look for, such as a name, number, code or topic.
        """
        found = await store.search(ctx.context.session_id, query, limit=results)
        lines = []
        for stored in found:
            described = describe(stored, bot_name)
            if described is None:
                continue
            speaker, text = described
            text = " ".join(text.split())
            if len(text) > result_chars:
                text = text[: result_chars - 1] + "…"
            lines.append(f"[{stored.created_at:%Y-%m-%d %H:%M}] {speaker}: {text}")
        if not lines:
            return "No earlier message in this conversation matches those words."
        return "Best matches first:\n" + "\n".join(lines)

    return function_tool(search_thread)
