"""A real MCP server for the tests, built on the `mcp` package's own `MCPServer`.

Tests run it as a child process, the way the bot runs any configured server::

    python -m tests.support.mcp_server              # stdio (the default)
    python -m tests.support.mcp_server --http 8123  # streamable HTTP on http://127.0.0.1:8123/mcp

From a test, point `agents.mcp.MCPServerStdio` at it with `stdio_params()`, or write an
`mcpServers` entry for the bot from `config_entry()` (both make `tests` importable wherever the
child starts); `async with serving_http() as url:` runs the HTTP mode for a `{"url": url}`
entry. Its tools:

- `lookup_ticket(ticket)`: "Ticket T-1: open, assigned to Dana, priority high";
- `slow(seconds)`: sleeps, then "done" — for `BOT_TOOL_TIMEOUT`;
- `crash()`: the process exits at once, mid-call — for reconnect and error-result tests;
- `delete_ticket(ticket)`: the "dangerous" one, for `require_approval` tests;
- `secret_admin()`: for `allowed_tools` tests (the config leaves it out; it must never run).

When `MCP_CALL_LOG` names a file, every call appends one JSON line
``{"tool": ..., "arguments": ..., "pid": ...}`` *before* the tool does its work (so a call that
crashes or times out is still recorded), flushed at once; `calls(path)` reads them back. The
pid tells a restarted server apart from the first one.

Importing this module starts nothing: `MCPServer` configures logging when constructed, so the
server is built in `build()`, only when run. Nothing is printed: on stdio, stdout is the
protocol channel; the SDK logs to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer

CALL_LOG_ENV = "MCP_CALL_LOG"
REPO_ROOT = Path(__file__).resolve().parents[2]
"""Where `python -m tests.support.mcp_server` must run for `tests` to be importable."""

TICKETS = {
    "T-1": "open, assigned to Dana, priority high",
    "T-2": "closed, assigned to Lee, priority low",
}


def _record(tool: str, **arguments: Any) -> None:
    path = os.environ.get(CALL_LOG_ENV)
    if not path:
        return
    line = json.dumps({"tool": tool, "arguments": arguments, "pid": os.getpid()})
    # Opened per call and flushed before the tool acts: `crash()` leaves no chance to flush later.
    with open(path, "a", encoding="utf-8") as log:
        log.write(line + "\n")
        log.flush()


def lookup_ticket(ticket: str) -> str:
    """Look up a support ticket by its id (e.g. T-1) and say its state."""
    _record("lookup_ticket", ticket=ticket)
    state = TICKETS.get(ticket.strip().upper())
    return f"Ticket {ticket}: {state}" if state else f"Ticket {ticket}: not found"


async def slow(seconds: float) -> str:
    """Wait the given number of seconds, then say done."""
    _record("slow", seconds=seconds)
    await asyncio.sleep(seconds)
    return "done"


def crash() -> str:
    """Run a self-check of the ticket system."""
    _record("crash")
    # os._exit, not sys.exit: no cleanup, no reply on the wire — what a real crash looks like.
    os._exit(1)


def delete_ticket(ticket: str) -> str:
    """Delete a support ticket for good."""
    _record("delete_ticket", ticket=ticket)
    return f"Ticket {ticket} deleted."


def secret_admin() -> str:
    """Administrative access to every ticket."""
    _record("secret_admin")
    return "admin access granted"


TOOLS = (lookup_ticket, slow, crash, delete_ticket, secret_admin)


def build() -> MCPServer[Any]:
    """The server with all its tools, ready to run on either transport."""
    # WARNING, not the SDK's INFO: the tests read stderr and need not wade through request logs.
    server: MCPServer[Any] = MCPServer("memorybot-test-tickets", log_level="WARNING")
    for tool in TOOLS:
        # Plain text results, as most servers in the wild return, not structured output.
        server.add_tool(tool, structured_output=False)
    return server


def stdio_params(call_log: Path | None = None) -> dict[str, Any]:
    """`MCPServerStdio(params=...)` for this server, logging calls to `call_log` if given."""
    return {**config_entry(call_log), "cwd": str(REPO_ROOT)}


def config_entry(call_log: Path | None = None, **options: Any) -> dict[str, Any]:
    """An `mcpServers` entry for this server (stdio), with extra keys such as `require_approval`.

    `PYTHONPATH` rather than a working directory finds `tests`, because the common `mcpServers`
    shape has no `cwd`; the SDK merges `env` over the safe subset of the parent's environment.
    """
    env = {"PYTHONPATH": str(REPO_ROOT)}
    if call_log is not None:
        env[CALL_LOG_ENV] = str(call_log)
    return {
        "command": sys.executable,
        "args": ["-m", "tests.support.mcp_server"],
        "env": env,
        **options,
    }


@contextlib.asynccontextmanager
async def serving_http(call_log: Path | None = None, *, seconds: float = 20) -> AsyncIterator[str]:
    """Run this server over streamable HTTP in a child process; yields its URL (…/mcp)."""
    with socket.socket() as probe:  # a free port; the child binds it a moment later
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    env = {**os.environ, **config_entry(call_log)["env"]}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.mcp_server", "--http", str(port), env=env
    )
    try:
        async with asyncio.timeout(seconds):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                await writer.wait_closed()
                break
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


def calls(path: Path) -> list[dict[str, Any]]:
    """The calls recorded in `path`, oldest first (none if the file was never written)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The MCP server the memorybot tests run.")
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on PORT")
    args = parser.parse_args(argv)
    server = build()
    if args.http is None:
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http, streamable_http_path="/mcp")


if __name__ == "__main__":
    main()
