"""Responders that make the fake model behave like a real one for memory tests.

A real model summarises when asked to and calls a tool when it needs one; these do the same,
deterministically, so a test can follow one fact through summaries and searches.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.openai_server import (
    Fault,
    Responder,
    ToolCall,
    message_text,
    reply_from_history,
)

CODE = re.compile(r"\b[A-Z]{2}-\d{4}\b")
"""What a good summary keeps verbatim: codes like ZX-4471."""


def is_summary_request(messages: list[dict[str, Any]]) -> bool:
    system = " ".join(message_text(m) for m in messages if m.get("role") == "system")
    return "running summary" in system


def summarizing(inner: Responder = reply_from_history) -> Responder:
    """Answer summary requests with the codes they mention (as a good summariser would keep)."""

    def respond(messages: list[dict[str, Any]]) -> str | ToolCall | Fault:
        if not is_summary_request(messages):
            return inner(messages)
        said = " ".join(message_text(m) for m in messages if m.get("role") == "user")
        codes = list(dict.fromkeys(CODE.findall(said)))
        return "Codes mentioned so far: " + (", ".join(codes) if codes else "none") + "."

    return respond


def searching(question: str, query: str, inner: Responder) -> Responder:
    """Call `search_thread(query)` when the newest message contains `question`, then answer
    with what the search returned."""

    def respond(messages: list[dict[str, Any]]) -> str | ToolCall | Fault:
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            return f"I searched the thread: {message_text(last)}"
        if last.get("role") == "user" and question in message_text(last):
            return ToolCall("search_thread", {"query": query})
        return inner(messages)

    return respond
