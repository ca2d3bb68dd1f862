"""The order-lookup tool of the customer-support profile in `profiles.toml`: an MCP server.

Run by the bot over stdio (the `orders` entry of `mcp.json` next to this file). It needs only
the `mcp` package, which the bot's own dependencies install. The orders live in memory here; a
real server would ask your shop's API, with a token from its `env` in `mcp.json`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server.mcpserver import MCPServer


@dataclass
class Order:
    item: str
    status: str


ORDERS: dict[str, Order] = {
    "A-1111": Order("a blue kettle", "shipped on Monday, arriving Thursday"),
    "B-2222": Order("two mugs", "waiting for stock, shipping next week"),
}

server: MCPServer[None] = MCPServer("orders", log_level="WARNING")


@server.tool(structured_output=False)
def lookup_order(order: str) -> str:
    """Look up a customer's order by its number, such as A-1111: what it is and where it is."""
    key = order.strip().upper()
    found = ORDERS.get(key)
    if found is None:
        return f"There is no order {order}."
    return f"Order {key}: {found.item}, {found.status}."


if __name__ == "__main__":
    server.run("stdio")
