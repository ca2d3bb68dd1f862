"""The operator page (`BOT_WEB_PORT`, or `python -m bot web`): threads, memory, usage and
approvals in a browser, read and changed through the store contract alone.

Like `bot.admin`, it is an operator's tool: nothing on a turn's path imports it.
"""

from .access import Access, check_exposure
from .page import Page
from .server import WebServer
from .standalone import open_page, serve_page

__all__ = ["Access", "Page", "WebServer", "check_exposure", "open_page", "serve_page"]
