"""MCP servers as the agent's tools: connected once, kept connected, every call bounded.

The SDK's `MCPServerManager` connects servers at start-up and skips those that fail, but it
does not notice a server that dies later: every call after a crash would fail until a restart.
`SupervisedServer` adds that. Each server's connection is owned by one task of its own (the MCP
client's anyio scopes must be entered and left by the same task), which reconnects with backoff
after a call finds the connection gone. The call that hit the crash becomes an error result the
model reads; it is never retried, because a tool may have done its work before dying.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from agents import Agent, FunctionTool, RunContextWrapper
from agents.mcp import (
    MCPServer,
    MCPServerStdio,
    MCPServerStreamableHttp,
    MCPUtil,
    create_static_tool_filter,
)
from mcp.types import CallToolResult, GetPromptResult, ListPromptsResult
from mcp.types import Tool as MCPTool

from .mcp_config import ServerSpec

logger = logging.getLogger(__name__)

CONNECT_SECONDS = 20.0
"""How long one connection attempt may take (a stdio server's start, an HTTP handshake)."""
PING_SECONDS = 2.0
"""How long a server has to answer a ping after a failed call before it counts as gone."""
RECONNECT_WAIT = 5.0
"""How long a call waits for a reconnection under way before it fails."""
MAX_BACKOFF = 30.0


class ToolServerUnavailableError(RuntimeError):
    """The tool's server is not connected; the model reads this as the tool's result."""


class SupervisedServer(MCPServer):
    """An MCP server that reconnects after a crash; what the SDK's tools call into.

    Approval policy lives here (the SDK asks the server it converts tools from); the tool
    filter and the transport live in the wrapped server.
    """

    def __init__(self, inner: MCPServer, spec: ServerSpec) -> None:
        approval = spec.require_approval
        super().__init__(
            require_approval=(
                approval
                if isinstance(approval, str)
                else {"always": {"tool_names": list(approval)}}
            ),
        )
        self._inner = inner
        self._spec = spec
        self._ready = asyncio.Event()
        self._broken = asyncio.Event()
        self._stopping = False
        self._first_attempt: asyncio.Future[bool] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> bool:
        """Connect for the first time; False (after one log line) when the server will not
        start, in which case it is left out for this run of the bot."""
        self._first_attempt = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._supervise(), name=f"mcp {self.name}")
        return await self._first_attempt

    async def close(self) -> None:
        self._stopping = True
        self._broken.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    # ----- MCPServer ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connections are the supervisor's; the SDK never drives them (tools are static)."""

    async def cleanup(self) -> None:
        """See `connect`."""

    async def list_tools(
        self, run_context: RunContextWrapper[Any] | None = None, agent: Any = None
    ) -> list[MCPTool]:
        await self._wait_ready()
        return await self._inner.list_tools(run_context, agent)

    async def call_tool(
        self, tool_name: str, arguments: dict[str, Any] | None, meta: dict[str, Any] | None = None
    ) -> CallToolResult:
        await self._wait_ready()
        try:
            return await self._inner.call_tool(tool_name, arguments, meta)
        except Exception:
            if not await self._answers_ping():
                logger.warning("MCP server %s stopped answering; reconnecting", self.name)
                self._ready.clear()
                self._broken.set()
            raise

    async def list_prompts(self) -> ListPromptsResult:
        return await self._inner.list_prompts()

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None
    ) -> GetPromptResult:
        return await self._inner.get_prompt(name, arguments)

    # ----- the connection's own task ------------------------------------------------------

    async def _supervise(self) -> None:
        backoff = 1.0
        while not self._stopping:
            try:
                async with asyncio.timeout(CONNECT_SECONDS):
                    # The SDK leaves connect() and cleanup() unannotated.
                    await _untyped(self._inner).connect()
            except Exception as exc:
                await self._cleanup_inner()
                if self._settle_first(False):
                    logger.warning(
                        "MCP server %s (%s) did not start, skipping its tools: %s",
                        self.name,
                        self._spec.transport,
                        _one_line(exc),
                    )
                    return
                logger.warning("Reconnecting MCP server %s failed: %s", self.name, _one_line(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 1.0
            self._ready.set()
            if not self._settle_first(True):
                logger.info("MCP server %s reconnected", self.name)
            await self._broken.wait()
            self._broken.clear()
            self._ready.clear()
            await self._cleanup_inner()

    def _settle_first(self, connected: bool) -> bool:
        """Report the first attempt's outcome; True if this was it."""
        if self._first_attempt is None or self._first_attempt.done():
            return False
        self._first_attempt.set_result(connected)
        return True

    async def _cleanup_inner(self) -> None:
        try:
            await _untyped(self._inner).cleanup()
        except Exception as exc:  # a dead server's transport may fail to close; it is gone anyway
            logger.debug("Closing MCP server %s: %s", self.name, _one_line(exc))

    async def _wait_ready(self) -> None:
        if self._ready.is_set():
            return
        try:
            async with asyncio.timeout(RECONNECT_WAIT):
                await self._ready.wait()
        except TimeoutError:
            raise ToolServerUnavailableError(
                f"The {self.name} tool server is not available right now."
            ) from None

    async def _answers_ping(self) -> bool:
        session = getattr(self._inner, "session", None)
        if session is None:
            return False
        try:
            async with asyncio.timeout(PING_SECONDS):
                await session.send_ping()
        except Exception:
            return False
        return True


def build_server(spec: ServerSpec, *, tool_timeout: float) -> SupervisedServer:
    """The SDK client for one configured server, supervised.

    The MCP session's own read timeout sits above `tool_timeout`, so the SDK's per-call
    timeout is the one that fires and the model reads a clear "timed out" result.
    """
    session_timeout = tool_timeout + 5.0
    tool_filter = (
        create_static_tool_filter(allowed_tool_names=list(spec.allowed_tools))
        if spec.allowed_tools is not None
        else None
    )
    inner: MCPServer
    if spec.command:
        params: Any = {"command": spec.command, "args": list(spec.args)}
        if spec.env is not None:
            params["env"] = dict(spec.env)
        if spec.cwd is not None:
            params["cwd"] = spec.cwd
        inner = MCPServerStdio(
            params,
            cache_tools_list=True,
            name=spec.name,
            client_session_timeout_seconds=session_timeout,
            tool_filter=tool_filter,
        )
    else:
        http: Any = {"url": spec.url, "timeout": session_timeout}
        if spec.headers is not None:
            http["headers"] = dict(spec.headers)
        inner = MCPServerStreamableHttp(
            http,
            cache_tools_list=True,
            name=spec.name,
            client_session_timeout_seconds=session_timeout,
            tool_filter=tool_filter,
        )
    return SupervisedServer(inner, spec)


async def server_tools(server: SupervisedServer) -> list[FunctionTool]:
    """The server's tools as SDK function tools, converted once.

    Passing servers to `Agent(mcp_servers=...)` would list and convert them on every run;
    converted once here, a turn with tools costs what a turn without them does, and a paused
    run's `RunState` finds the same tools after a restart.
    """
    placeholder = Agent(name="tools")
    converted = await MCPUtil.get_function_tools(
        server,
        convert_schemas_to_strict=False,
        run_context=RunContextWrapper(None),
        agent=placeholder,
    )
    return [tool for tool in converted if isinstance(tool, FunctionTool)]


async def connect_servers(
    specs: Sequence[ServerSpec], *, tool_timeout: float
) -> tuple[list[SupervisedServer], list[tuple[str, FunctionTool]]]:
    """Start every server at once; those that fail are logged and left out. Each tool comes
    with the name of its server."""
    servers = [build_server(spec, tool_timeout=tool_timeout) for spec in specs]
    started = await asyncio.gather(*(server.start() for server in servers))
    live = [server for server, ok in zip(servers, started, strict=True) if ok]
    tools: list[tuple[str, FunctionTool]] = []
    for server in live:
        try:
            found = await server_tools(server)
        except Exception as exc:
            logger.warning(
                "Listing MCP server %s's tools failed, skipping it: %s", server.name, _one_line(exc)
            )
            continue
        logger.info(
            "MCP server %s: %s", server.name, ", ".join(t.name for t in found) or "no tools"
        )
        tools.extend((server.name, tool) for tool in found)
    return servers, tools


async def close_servers(servers: Sequence[SupervisedServer]) -> None:
    with contextlib.suppress(Exception):
        await asyncio.gather(*(server.close() for server in servers), return_exceptions=True)


def _untyped(server: MCPServer) -> Any:
    return server


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _one_line(exc.exceptions[0])
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
