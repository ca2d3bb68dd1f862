"""Conversation items in the shapes the SDK stores, for store and turn tests."""

from __future__ import annotations

from typing import Any


def msg(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "content": text}


def tool_call(call_id: str, name: str = "lookup") -> dict[str, Any]:
    return {
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": "{}",
        "id": f"fc_{call_id}",
    }


def tool_output(call_id: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": "TOOL-OUTPUT-42"}


TRICKY = [
    msg("user", "héllo wörld — 你好 — 🎉🚀 — مرحبا — \u202eRTL\u202c"),
    msg("assistant", "'); DROP TABLE agent_messages; --"),
    msg("user", 'quote " and backslash \\ and NUL \x00 in text'),
    msg("assistant", "lone surrogate \ud800 survives as an escape"),
]
"""Text that trips careless storage: scripts, emoji, bidi controls, SQL, quotes, NUL, a lone
surrogate."""
