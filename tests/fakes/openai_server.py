"""A fake OpenAI-compatible model server on loopback, for the real `openai` client and `Runner`.

It speaks Chat Completions and the Responses API, streaming and not. By default it answers
*from the messages it receives* (`reply_from_history`), so a test can prove what history reached
the model. Faults are queued per request: an HTTP status with headers, a delay, a stream that
stalls or breaks mid-answer, malformed JSON, a dropped connection.

Like OpenAI's API it reports usage on every response (streamed too, when the request sets
`stream_options.include_usage`), counting tokens the way BPE tokenizers roughly do (about four
ASCII characters, or one other character, per token), including prompt-cache hits: the longest
prefix shared with a recent request, from 1,024 tokens on, in steps of 128. With a
`context_window` it refuses over-long requests with OpenAI's `context_length_exceeded` error,
and it stops answers at the request's `max_tokens` with `finish_reason: "length"`. A responder
may return a `ToolCall` to call one of the request's tools instead of answering, or a `Fault`
to fail that kind of request.

Run on its own (`python -m tests.fakes.openai_server`, which prints its base URL), it keeps its
CPU out of a benchmark's processes; `GET <base URL>/_fake/stats` then tells the most requests
it held at once since the last such read, how many it has had, and its own CPU seconds.
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

CACHE_MINIMUM = 1024
CACHE_STEP = 128
CACHE_RETENTION = 16
"""Recent requests whose prefixes are still cached (OpenAI keeps them for minutes)."""
MESSAGE_OVERHEAD = 4
"""Tokens each chat message costs beyond its content (role and separators)."""


@dataclass(frozen=True)
class ToolCall:
    """What a responder returns to have the model call a tool."""

    name: str
    arguments: dict[str, Any]


Responder = Callable[[list[dict[str, Any]]], "str | ToolCall | Fault"]


def count_tokens(text: str) -> int:
    """Tokens as BPE tokenizers roughly count them: ~4 ASCII characters, or 1 other, each."""
    ascii_chars = sum(1 for char in text if ord(char) < 128)
    return -(-ascii_chars // 4) + (len(text) - ascii_chars)


def message_text(message: dict[str, Any]) -> str:
    """The plain text of a chat message or Responses input item."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def content_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's content as parts (a plain string is one text part)."""
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [part for part in content or [] if isinstance(part, dict)]


def image_urls(message: dict[str, Any]) -> list[str]:
    """The image URLs a message carries, in either API's shape."""
    urls = []
    for part in content_parts(message):
        if part.get("type") == "image_url":
            urls.append(str(part.get("image_url", {}).get("url", "")))
        elif part.get("type") == "input_image":
            urls.append(str(part.get("image_url", "")))
    return urls


def _orphan_tool_result(api: str, messages: list[dict[str, Any]]) -> int | None:
    """The index of the first tool result whose call came nowhere before it, if any."""
    called: set[str] = set()
    for index, message in enumerate(messages):
        if api == "chat":
            for call in message.get("tool_calls") or []:
                called.add(str(call.get("id")))
            if message.get("role") == "tool" and str(message.get("tool_call_id")) not in called:
                return index
        else:
            if message.get("type") == "function_call":
                called.add(str(message.get("call_id")))
            if (
                message.get("type") == "function_call_output"
                and str(message.get("call_id")) not in called
            ):
                return index
    return None


def _has_images(messages: list[dict[str, Any]]) -> bool:
    return any(image_urls(message) for message in messages)


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
    error_type: str | None = None


@dataclass
class RequestRecord:
    api: str
    body: dict[str, Any]
    messages: list[dict[str, Any]]
    started: float
    finished: float | None = None
    first_chunk: float | None = None
    """When the first streamed text left the server (time.monotonic), for latency benchmarks."""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    authorization: str | None = None
    """The request's `Authorization` header, to see which key went to which server."""


@dataclass
class Answer:
    """One response's content and what it cost."""

    content: str | ToolCall
    finish: str
    record: RequestRecord
    call_id: str | None = None

    @property
    def text(self) -> str:
        return self.content if isinstance(self.content, str) else ""

    @property
    def call(self) -> ToolCall | None:
        return self.content if isinstance(self.content, ToolCall) else None

    @property
    def arguments(self) -> str:
        return json.dumps(self.call.arguments) if self.call else ""

    @property
    def output_tokens(self) -> int:
        return count_tokens(self.text or self.arguments)

    def chat_usage(self) -> dict[str, Any]:
        prompt = self.record.prompt_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": self.output_tokens,
            "total_tokens": prompt + self.output_tokens,
            "prompt_tokens_details": {"cached_tokens": self.record.cached_tokens},
        }

    def responses_usage(self) -> dict[str, Any]:
        prompt = self.record.prompt_tokens
        return {
            "input_tokens": prompt,
            "output_tokens": self.output_tokens,
            "total_tokens": prompt + self.output_tokens,
            "input_tokens_details": {"cached_tokens": self.record.cached_tokens},
            "output_tokens_details": {"reasoning_tokens": 0},
        }


def _prompt_text(body: dict[str, Any], messages: list[dict[str, Any]]) -> str:
    """The request as the model reads it, in order: tool definitions, then the messages."""
    return json.dumps(body.get("tools") or []) + json.dumps(messages, ensure_ascii=False)


def _cut_to_tokens(text: str, tokens: int) -> str:
    ascii_chars = other = 0
    for index, char in enumerate(text):
        if ord(char) < 128:
            ascii_chars += 1
        else:
            other += 1
        if -(-ascii_chars // 4) + other > tokens:
            return text[:index]
    return text


def cached_tokens(prompt: str, earlier: str) -> int:
    """Tokens of `prompt` a provider would bill as cached after `earlier`: their shared prefix,
    counted from 1,024 tokens on and in steps of 128, as OpenAI's prompt caching does."""
    tokens = count_tokens(prompt[: _shared_prefix(prompt, earlier)])
    return tokens // CACHE_STEP * CACHE_STEP if tokens >= CACHE_MINIMUM else 0


def shared_prefix_share(prompt: str, earlier: str) -> float:
    """The share of `prompt` that repeats `earlier` from its first character."""
    return _shared_prefix(prompt, earlier) / max(1, len(prompt))


def _shared_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix, by binary search over C-speed slice compares."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


class FakeOpenAI:
    """`async with FakeOpenAI() as fake:` then point `base_url` at `fake.base_url`."""

    def __init__(
        self,
        responder: Responder = reply_from_history,
        *,
        chunk_chars: int = 8,
        chunk_delay: float = 0.0,
        latency: float = 0.0,
        context_window: int | None = None,
        vision: bool = True,
    ) -> None:
        self.responder = responder
        self.context_window = context_window
        self.vision = vision
        """False: refuse image input as OpenAI does for a model without vision."""
        self._recent_prompts: deque[str] = deque(maxlen=CACHE_RETENTION)
        self.chunk_chars = chunk_chars
        self.chunk_delay = chunk_delay
        self.latency = latency
        self.faults: deque[Fault] = deque()
        self.requests: list[RequestRecord] = []
        self.request_seen = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self._ids = itertools.count(1)
        self._calls_sent: dict[str, float] = {}
        self.tool_gaps: list[float] = []
        """Seconds from sending a tool call to receiving the request that carries its result."""
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
        # Not OpenAI's: lets a benchmark in another process read (and reset) `tool_gaps`.
        app.router.add_get("/v1/_fake/tool_gaps", self._gaps)
        # Not OpenAI's either: the peak of requests at once since the last read, and this
        # process's CPU, for a benchmark that runs the fake in a process of its own.
        app.router.add_get("/v1/_fake/stats", self._stats)
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
        record = RequestRecord(
            api,
            body,
            messages,
            time.monotonic(),
            authorization=request.headers.get("Authorization"),
        )
        self._time_tool_results(messages, record.started)
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
            if not self.vision and _has_images(messages):
                return self._no_vision(api)
            orphan = _orphan_tool_result(api, messages)
            if orphan is not None:
                return self._orphan(api, orphan)
            prompt = _prompt_text(body, messages)
            record.prompt_tokens = count_tokens(prompt) + MESSAGE_OVERHEAD * len(messages)
            limit = body.get("max_tokens") or body.get("max_completion_tokens")
            limit = limit or body.get("max_output_tokens")
            if self.context_window and record.prompt_tokens + (limit or 0) > self.context_window:
                return self._too_long(record.prompt_tokens + (limit or 0))
            record.cached_tokens = self._cached_tokens(prompt)
            answer = self.responder(messages)
            if isinstance(answer, Fault):
                return self._error(answer)
            finish = "tool_calls" if isinstance(answer, ToolCall) else "stop"
            if isinstance(answer, str) and limit and count_tokens(answer) > limit:
                answer, finish = _cut_to_tokens(answer, int(limit)), "length"
            reply = Answer(answer, finish, record)
            if body.get("stream"):
                if api == "chat":
                    return await self._stream_chat(request, body, reply, fault)
                return await self._stream_responses(request, body, reply, fault)
            if api == "chat":
                return web.json_response(self._chat_completion(body, reply))
            return web.json_response(self._response_object(body, reply))
        finally:
            self.in_flight -= 1
            record.finished = time.monotonic()

    def _time_tool_results(self, messages: list[dict[str, Any]], now: float) -> None:
        for message in messages:
            call_id = message.get("tool_call_id") or (
                message.get("call_id") if message.get("type") == "function_call_output" else None
            )
            sent = self._calls_sent.pop(str(call_id), None) if call_id else None
            if sent is not None:
                self.tool_gaps.append(now - sent)

    async def _gaps(self, request: web.Request) -> web.Response:
        gaps, self.tool_gaps = self.tool_gaps, []
        return web.json_response(gaps)

    async def _stats(self, request: web.Request) -> web.Response:
        stats = {
            "max_in_flight": self.max_in_flight,
            "in_flight": self.in_flight,
            "requests": len(self.requests),
            "cpu_seconds": time.process_time(),
        }
        # Requests still running count towards the next stretch's peak too.
        self.max_in_flight = self.in_flight
        return web.json_response(stats)

    def _cached_tokens(self, prompt: str) -> int:
        cached = max(
            (cached_tokens(prompt, earlier) for earlier in self._recent_prompts), default=0
        )
        self._recent_prompts.append(prompt)
        return cached

    def _too_long(self, tokens: int) -> web.Response:
        # OpenAI's own wording and codes for this refusal.
        message = (
            f"This model's maximum context length is {self.context_window} tokens. However, "
            f"your messages resulted in {tokens} tokens. Please reduce the length of the "
            "messages."
        )
        payload = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }
        return web.json_response(payload, status=400)

    def _no_vision(self, api: str) -> web.Response:
        # OpenAI's refusal for image input to a model without vision.
        part = "image_url" if api == "chat" else "input_image"
        payload = {
            "error": {
                "message": f"Invalid content type. {part} is only supported by certain models.",
                "type": "invalid_request_error",
                "param": "messages.[1].content.[1].type" if api == "chat" else "input",
                "code": None,
            }
        }
        return web.json_response(payload, status=400)

    def _orphan(self, api: str, index: int) -> web.Response:
        # OpenAI refuses a tool result whose call is not in the request, in these words.
        if api == "chat":
            message = (
                "Invalid parameter: messages with role 'tool' must be a response to a "
                "preceeding message with 'tool_calls'."
            )
            param = f"messages.[{index}].role"
        else:
            message = "No tool call found for function call output."
            param = "input"
        payload = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": None,
            }
        }
        return web.json_response(payload, status=400)

    def _error(self, fault: Fault) -> web.Response:
        code = fault.error_code or {429: "rate_limit_exceeded"}.get(fault.status or 0, "error")
        message = fault.body or f"fake error {fault.status}"
        payload = {"error": {"message": message, "type": fault.error_type or code, "code": code}}
        return web.json_response(payload, status=fault.status or 500, headers=fault.headers)

    def _chunks(self, text: str) -> list[str]:
        size = max(1, self.chunk_chars)
        return [text[i : i + size] for i in range(0, len(text), size)] or [""]

    def _call_id(self) -> str:
        call_id = f"call_{next(self._ids)}"
        # When the call left, to time how long the client takes to bring its result back.
        self._calls_sent[call_id] = time.monotonic()
        return call_id

    # ----- Chat Completions ----------------------------------------------------------------

    def _chat_completion(self, body: dict[str, Any], reply: Answer) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.call is not None:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": self._call_id(),
                        "type": "function",
                        "function": {"name": reply.call.name, "arguments": reply.arguments},
                    }
                ],
            }
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish}],
            "usage": reply.chat_usage(),
        }

    async def _stream_chat(
        self, request: web.Request, body: dict[str, Any], reply: Answer, fault: Fault
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk_id = f"chatcmpl-{next(self._ids)}"

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            payload = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        def delta(content: dict[str, Any], finish: str | None = None) -> bytes:
            return event([{"index": 0, "delta": content, "finish_reason": finish}])

        if reply.call is not None:
            call = {"index": 0, "id": self._call_id(), "type": "function"}
            first = {**call, "function": {"name": reply.call.name, "arguments": ""}}
            await response.write(
                delta({"role": "assistant", "content": None, "tool_calls": [first]})
            )
            for piece in self._chunks(reply.arguments):
                more = {"index": 0, "function": {"arguments": piece}}
                await response.write(delta({"tool_calls": [more]}))
        else:
            for index, piece in enumerate(self._chunks(reply.text)):
                if await self._interrupt(request, fault, index):
                    return response
                content: dict[str, Any] = {"content": piece}
                if index == 0:
                    content["role"] = "assistant"
                await response.write(delta(content))
                if index == 0:
                    reply.record.first_chunk = time.monotonic()
                if self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
        await response.write(delta({}, reply.finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            # As OpenAI documents: one last chunk with no choices and the whole request's usage.
            await response.write(event([], usage=reply.chat_usage()))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # ----- Responses API -------------------------------------------------------------------

    def _response_object(
        self, body: dict[str, Any], reply: Answer | None, status: str = "completed"
    ) -> dict[str, Any]:
        output = [] if reply is None else [self._output_item(reply)]
        return {
            "id": f"resp_{next(self._ids)}",
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "model": body.get("model", "fake"),
            "output": output,
            "parallel_tool_calls": False,
            "tool_choice": "auto",
            "tools": [],
            "usage": None if reply is None else reply.responses_usage(),
        }

    def _output_item(self, reply: Answer) -> dict[str, Any]:
        if reply.call is not None:
            return {
                "id": "fc_fake",
                "type": "function_call",
                "call_id": reply.call_id or self._call_id(),
                "name": reply.call.name,
                "arguments": reply.arguments,
                "status": "completed",
            }
        return self._output_message(reply.text)

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
        self, request: web.Request, body: dict[str, Any], reply: Answer, fault: Fault
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        sequence = itertools.count()

        async def send(kind: str, **fields: Any) -> None:
            payload = {"type": kind, "sequence_number": next(sequence), **fields}
            await response.write(f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())

        started = self._response_object(body, None, status="in_progress")
        await send("response.created", response=started)
        if reply.call is not None:
            reply.call_id = self._call_id()
            item = self._output_item(reply)
            await send(
                "response.output_item.added",
                output_index=0,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            await send(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=0,
                arguments=reply.arguments,
            )
            await send("response.output_item.done", output_index=0, item=item)
        else:
            await self._stream_response_text(send, request, reply, fault)
        final = self._response_object(body, reply)
        final["id"] = started["id"]
        await send("response.completed", response=final)
        await response.write_eof()
        return response

    async def _stream_response_text(
        self, send: Callable[..., Any], request: web.Request, reply: Answer, fault: Fault
    ) -> None:
        text = reply.text
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
                return
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

    async def _interrupt(self, request: web.Request, fault: Fault, index: int) -> bool:
        if fault.stall_after is not None and index >= fault.stall_after:
            await asyncio.sleep(3600)
        if fault.break_after is not None and index >= fault.break_after:
            transport = request.transport
            if transport is not None:
                transport.abort()
            return True
        return False


def calling(tool: str, arguments: dict[str, Any]) -> Responder:
    """Calls `tool` for every new message, then answers with what it returned."""

    def respond(messages: list[dict[str, Any]]) -> str | ToolCall | Fault:
        last = messages[-1] if messages else {}
        if last.get("role") == "tool" or last.get("type") == "function_call_output":
            return f"The tool said: {message_text(last) or last.get('output', '')}"
        return ToolCall(tool, arguments)

    return respond


async def _serve_forever(latency: float, chunk_chars: int, tool: str | None) -> None:
    responder = calling(tool, {"ticket": "T-1"}) if tool else reply_from_history
    async with FakeOpenAI(responder, latency=latency, chunk_chars=chunk_chars) as fake:
        sys.stdout.write(f"{fake.base_url}\n")
        sys.stdout.flush()
        await asyncio.Event().wait()


if __name__ == "__main__":
    # A standalone fake model, so benchmarks can keep its CPU out of the bot's process.
    parser = argparse.ArgumentParser(description="fake OpenAI-compatible server on 127.0.0.1")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--chunk-chars", type=int, default=8)
    parser.add_argument("--tool", help="call this tool (with ticket T-1) before every answer")
    cli = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(cli.latency, cli.chunk_chars, cli.tool))
