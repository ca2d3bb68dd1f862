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
    return {"type": "function_call_output", "call_id": call_id, "output": "42"}
