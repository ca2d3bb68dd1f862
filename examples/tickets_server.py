"""A small MCP server with two tools, as a template for your own: copy it and change the tools.

Run by the bot over stdio (see `mcp.json` next to this file), or as a streamable HTTP server
for a `url` entry (see `mcp-http.json`):

    .venv/bin/python examples/tickets_server.py --http 8000    # then http://127.0.0.1:8000/mcp

It needs only the `mcp` package, which the bot's own dependencies already install into its venv
(`mcp.json` runs it with `${PYTHON}`, that venv's interpreter). On stdio, stdout *is* the
protocol channel: never print from a tool. Log instead; the log goes to stderr, which the bot
passes through to its own stderr.

The tickets live in memory here; a real server would call your ticket system's API, reading
its token from an environment variable set in the `env` of the server's `mcp.json` entry.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from mcp.server.mcpserver import MCPServer

logger = logging.getLogger("tickets")


@dataclass
class Ticket:
    title: str
    assignee: str
    status: str = "open"


TICKETS: dict[str, Ticket] = {
    "T-1": Ticket("Login page times out", "Dana"),
    "T-2": Ticket("Export to CSV drops accents", "Lee"),
}

server: MCPServer[None] = MCPServer("tickets", log_level="WARNING")


# A tool's name, docstring and typed parameters are what the model sees: describe the tool
# the way you would to a colleague, and say what the arguments look like.
@server.tool(structured_output=False)
def lookup_ticket(ticket: str) -> str:
    """Look up a support ticket by its id, such as T-1: its title, assignee and status."""
    key = ticket.strip().upper()
    found = TICKETS.get(key)
    if found is None:
        # Returned, not raised: the model reads it and can tell the person.
        return f"There is no ticket {ticket}."
    return f"{key}: {found.title!r}, assigned to {found.assignee}, {found.status}."


@server.tool(structured_output=False)
def close_ticket(ticket: str, reason: str) -> str:
    """Close a support ticket (such as T-1), giving the reason it is done."""
    key = ticket.strip().upper()
    found = TICKETS.get(key)
    if found is None:
        return f"There is no ticket {ticket}."
    found.status = f"closed ({reason})"
    logger.warning("Closed %s: %s", key, reason)  # stderr: visible in the bot's log
    return f"Closed {key}."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--http", type=int, metavar="PORT", help="serve HTTP on 127.0.0.1:PORT")
    args = parser.parse_args()
    if args.http is None:
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)


if __name__ == "__main__":
    main()
