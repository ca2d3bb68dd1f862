"""A fake OpenAI-compatible model server on loopback, for the real `openai` client and `Runner`.

It speaks Chat Completions and the Responses API, streaming and not. By default it answers
*from the messages it receives* (`reply_from_history`), so a test can prove what history reached
the model. Faults are queued per request: an HTTP status with headers, a delay, a stream that
stalls or breaks mid-answer, malformed JSON, a dropped connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import serve_on_loopback

Responder = Callable[[list[dict[str, Any]]], str]


def message_text(message: dict[str, Any]) -> str:
    """The plain text of a chat message or Responses input item."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def user_texts(messages: list[dict[str, Any]]) -> list[str]:
    return [message_text(m) for m in messages if m.get("role") == "user"]


def reply_from_history(messages: list[dict[str, Any]]) -> str:
    """'You said: <last>. Before that: <earlier user messages>.' — proves memory reached us."""
    said = user_texts(messages)
    if not said:
        return "Nobody said anything."
    earlier = "; ".join(said[:-1]) or "nothing"
    return f"You said: {said[-1]}. Before that: {earlier}."


@dataclass
class Fault:
    """What to do instead of (or while) answering one request."""

    status: int | None = None
    """Answer with this HTTP status and an error body."""
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    """Raw body (e.g. malformed JSON) with status 200; with `status`, the error message."""
    delay: float = 0.0
    """Seconds to wait before answering at all."""
    stall_after: int | None = None
    """Streaming: send this many chunks, then hang (until the client gives up)."""
    break_after: int | None = None
    """Streaming: send this many chunks, then drop the connection."""
    error_code: str | None = None


@dataclass
class RequestRecord:
    api: str
    body: dict[str, Any]
    messages: list[dict[str, Any]]
    started: float
    finished: float | None = None
    first_chunk: float | None = None
    """When the first streamed text left the server (time.monotonic), for latency benchmarks."""


class FakeOpenAI:
    """`async with FakeOpenAI() as fake:` then point `base_url` at `fake.base_url`."""

    def __init__(
        self,
        responder: Responder = reply_from_history,
        *,
        chunk_chars: int = 8,
        chunk_delay: float = 0.0,
        latency: float = 0.0,
    ) -> None:
        self.responder = responder
        self.chunk_chars = chunk_chars
        self.chunk_delay = chunk_delay
        self.latency = latency
        self.faults: deque[Fault] = deque()
        self.requests: list[RequestRecord] = []
        self.request_seen = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def completed(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.finished is not None]

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    async def start(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)
        self._runner, self.port = await serve_on_loopback(app)
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----- Chat Completions ----------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        return await self._serve(request, "chat", body, list(body.get("messages", [])))

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        raw_input = body.get("input", [])
        messages = (
            [{"role": "user", "content": raw_input}] if isinstance(raw_input, str) else raw_input
        )
        if body.get("instructions"):
            messages = [{"role": "system", "content": body["instructions"]}, *messages]
        return await self._serve(request, "responses", body, list(messages))

    async def _serve(
        self, request: web.Request, api: str, body: dict[str, Any], messages: list[dict[str, Any]]
    ) -> web.StreamResponse:
        record = RequestRecord(api, body, messages, time.monotonic())
        self.requests.append(record)
        self.request_seen.set()
        fault = self.faults.popleft() if self.faults else Fault()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if fault.delay or self.latency:
                await asyncio.sleep(fault.delay or self.latency)
            if fault.status is not None:
                return self._error(fault)
            if fault.body is not None:
                return web.Response(text=fault.body, content_type="application/json")
            text = self.responder(messages)
            if body.get("stream"):
                if api == "chat":
                    return await self._stream_chat(request, body, text, fault, record)
                return await self._stream_responses(request, body, text, fault)
            if api == "chat":
                return web.json_response(self._chat_completion(body, text))
            return web.json_response(self._response_object(body, text))
        finally:
            self.in_flight -= 1
            record.finished = time.monotonic()

    def _error(self, fault: Fault) -> web.Response:
        code = fault.error_code or {429: "rate_limit_exceeded"}.get(fault.status or 0, "error")
        message = fault.body or f"fake error {fault.status}"
        payload = {"error": {"message": message, "type": code, "code": code}}
        return web.json_response(payload, status=fault.status or 500, headers=fault.headers)

    def _chunks(self, text: str) -> list[str]:
        size = max(1, self.chunk_chars)
        return [text[i : i + size] for i in range(0, len(text), size)] or [""]

    def _chat_completion(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    async def _stream_chat(
        self,
        request: web.Request,
        body: dict[str, Any],
        text: str,
        fault: Fault,
        record: RequestRecord,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk_id = f"chatcmpl-{next(self._ids)}"

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        for index, piece in enumerate(self._chunks(text)):
            if await self._interrupt(request, fault, index):
                return response
            delta = {"content": piece}
            if index == 0:
                delta["role"] = "assistant"
            await response.write(event(delta))
            if index == 0:
                record.first_chunk = time.monotonic()
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
        await response.write(event({}, "stop"))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # ----- Responses API -------------------------------------------------------------------

    def _response_object(
        self, body: dict[str, Any], text: str, status: str = "completed"
    ) -> dict[str, Any]:
        return {
            "id": f"resp_{next(self._ids)}",
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "model": body.get("model", "fake"),
            "output": [self._output_message(text)] if status == "completed" else [],
            "parallel_tool_calls": False,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 1,
                "output_tokens": 1,
                "total_tokens": 2,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }

    @staticmethod
    def _output_message(text: str) -> dict[str, Any]:
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }

    async def _stream_responses(
        self, request: web.Request, body: dict[str, Any], text: str, fault: Fault
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        sequence = itertools.count()

        async def send(kind: str, **fields: Any) -> None:
            payload = {"type": kind, "sequence_number": next(sequence), **fields}
            await response.write(f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())

        started = self._response_object(body, "", status="in_progress")
        await send("response.created", response=started)
        empty = {**self._output_message(""), "status": "in_progress", "content": []}
        await send("response.output_item.added", output_index=0, item=empty)
        part = {"type": "output_text", "text": "", "annotations": []}
        await send(
            "response.content_part.added",
            item_id="msg_fake",
            output_index=0,
            content_index=0,
            part=part,
        )
        for index, piece in enumerate(self._chunks(text)):
            if await self._interrupt(request, fault, index):
                return response
            await send(
                "response.output_text.delta",
                item_id="msg_fake",
                output_index=0,
                content_index=0,
                delta=piece,
                logprobs=[],
            )
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
        await send(
            "response.output_text.done",
            item_id="msg_fake",
            output_index=0,
            content_index=0,
            text=text,
            logprobs=[],
        )
        await send("response.output_item.done", output_index=0, item=self._output_message(text))
        final = self._response_object(body, text)
        final["id"] = started["id"]
        await send("response.completed", response=final)
        await response.write_eof()
        return response

    async def _interrupt(self, request: web.Request, fault: Fault, index: int) -> bool:
        if fault.stall_after is not None and index >= fault.stall_after:
            await asyncio.sleep(3600)
        if fault.break_after is not None and index >= fault.break_after:
            transport = request.transport
            if transport is not None:
                transport.abort()
            return True
        return False


async def _serve_forever(latency: float, chunk_chars: int) -> None:
    async with FakeOpenAI(latency=latency, chunk_chars=chunk_chars) as fake:
        sys.stdout.write(f"{fake.base_url}\n")
        sys.stdout.flush()
        await asyncio.Event().wait()


if __name__ == "__main__":
    # A standalone fake model, so benchmarks can keep its CPU out of the bot's process.
    parser = argparse.ArgumentParser(description="fake OpenAI-compatible server on 127.0.0.1")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--chunk-chars", type=int, default=8)
    cli = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(cli.latency, cli.chunk_chars))
