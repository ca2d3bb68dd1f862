"""`python -m bot`: run the bot (console by default) or look after its memory.

The commands come from two tables: the installed adapters (`python -m bot discord`) and the
admin commands (`bot.admin.COMMANDS`), plus `serve`; this module only parses and dispatches.
It never imports the Agents SDK, openai or a platform's library itself: the commands that run
the bot import `bot.app` when they start, so `--help` and the admin commands answer at once
(`tests/test_cli.py` holds it to that).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from .adapter import PlatformUnreachableError
from .admin import COMMANDS, AdminContext, NotFoundError
from .admin.portable import FormatError
from .config import ConfigError, load_config
from .ops.logs import configure_logging
from .platforms import available_adapters, configured_platforms, secrets, serving
from .storage import failure

logger = logging.getLogger(__name__)

ADMIN = {command.name: command for command in COMMANDS}
SERVE = "serve"
WEB = "web"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description=(
            "A chat bot that remembers each thread. With no command it serves every platform "
            "whose tokens are configured, or chats in this terminal when none are."
        ),
    )
    parser.add_argument("--env-file", default=".env", help="settings file (default: .env)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, plugin in available_adapters().items():
        platform = sub.add_parser(name, help=plugin.summary)
        for option in plugin.options:
            platform.add_argument(f"--{option.name}", default=option.default, help=option.help)
    sub.add_parser(
        SERVE,
        help="serve every platform whose tokens are configured (for services and containers)",
        description=(
            "Serve every platform whose tokens are configured. With none configured it exits "
            "with status 2 and says what to set; it never falls back to the console."
        ),
    )
    page = sub.add_parser(
        WEB,
        help="serve the operator page alone, on the configured memory",
        description=(
            "Serve the operator page (threads, memory, usage, approvals) on the configured "
            "memory, without running the bot: for a PostgreSQL fleet, or to look at a SQLite "
            "file. BOT_WEB_PASSWORD signs operators in; without it only loopback is served."
        ),
    )
    page.add_argument("--host", help="address to listen on (BOT_WEB_HOST, else 127.0.0.1)")
    page.add_argument("--port", type=int, help="port (BOT_WEB_PORT, else 8080)")
    for command in COMMANDS:
        command.arguments(
            sub.add_parser(command.name, help=command.help, description=command.description)
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run(args)
        # Written out here, where a reader that went away is still ours to notice.
        sys.stdout.flush()
    except BrokenPipeError:
        # `python -m bot export --all | head -1`: the reader has all it wanted.
        _discard_stdout()
        return 0
    except ConfigError as exc:
        parser.exit(2, f"error: {exc}\n")
    except FormatError as exc:
        parser.exit(1, f"error: {exc}; nothing of that thread was imported\n")
    except (NotFoundError, PlatformUnreachableError) as exc:
        parser.exit(1, f"error: {exc}\n")
    except Exception as exc:
        if failure(exc) is None and not isinstance(exc, OSError):
            raise
        parser.exit(
            1,
            f"error: cannot use the memory database: {exc} "
            "(check BOT_DB_PATH or BOT_DATABASE_URL)\n",
        )
    except KeyboardInterrupt:
        return 130
    return 0


def run(args: argparse.Namespace) -> None:
    """Run the parsed command: an admin command, or the bot on its platforms."""
    config = load_config(dotenv_path=args.env_file)
    configured = configured_platforms(config.environment)
    command = args.command or ("auto" if configured else "console")
    configure_logging(
        config.log_level or ("WARNING" if command == "console" else "INFO"),
        config.secrets + secrets(config.environment),
        fmt=config.log_format,
    )
    admin = ADMIN.get(command)
    if admin is not None:
        admin.run(AdminContext(config, args, sys.stdout, sorted(available_adapters())))
        return
    if command == WEB:
        from .web import serve_page

        host = args.host or config.web_host
        asyncio.run(serve_page(config, host=host, port=args.port or config.web_port or 8080))
        return
    if command == SERVE:
        platforms = serving(config.environment)
    else:
        platforms = configured if command == "auto" else [command]
    options = {
        key: str(value)
        for key, value in vars(args).items()
        if key not in {"command", "env_file"} and value is not None
    }
    # Imported only now: the core brings the Agents SDK and openai, the adapters their
    # platforms' libraries, a second or more that no admin command should wait for.
    from .app import serve

    asyncio.run(serve(config, platforms, options))


def _discard_stdout() -> None:
    # Python flushes stdout once more as it exits; aimed at the null device, that flush has
    # nowhere to fail, so no "Exception ignored ... BrokenPipeError" follows the quiet exit.
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, sys.stdout.fileno())
        finally:
            os.close(null)
    except (OSError, ValueError):  # stdout is no file (replaced, or already closed)
        pass
