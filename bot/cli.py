"""`python -m bot`: run the bot (console by default) or look at its memory."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from . import admin
from .app import serve
from .config import ConfigError, load_config
from .logs import configure_logging
from .plugins import available_adapters, configured_platforms, secrets
from .storage import failure

logger = logging.getLogger(__name__)


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
    sub.add_parser("sessions", help="list stored conversations (read-only)")
    history = sub.add_parser("history", help="print one conversation's memory (read-only)")
    history.add_argument("session_id", help="as listed by `sessions`, e.g. console:default")
    history.add_argument("--limit", type=int, default=100, help="newest items to show")
    migrate = sub.add_parser(
        "migrate",
        help="copy every thread from one memory database to another (safe to repeat)",
        description=(
            "Copy every thread (items, authors, times, summaries, usage) from one database to "
            "another, e.g. --from sqlite:///memory.sqlite3 --to postgresql://bot@db/memorybot. "
            "Threads the target already has are left alone, so running it twice copies nothing "
            "twice."
        ),
    )
    migrate.add_argument("--from", dest="source", required=True, metavar="URL")
    migrate.add_argument("--to", dest="target", required=True, metavar="URL")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(dotenv_path=args.env_file)
        configured = configured_platforms(config.environment)
        command = args.command or ("auto" if configured else "console")
        interactive = command == "console"
        configure_logging(
            config.log_level or ("WARNING" if interactive else "INFO"),
            config.secrets + secrets(config.environment),
        )
        if command == "sessions":
            admin.list_sessions(config, sys.stdout)
        elif command == "history":
            admin.print_history(config, args.session_id, args.limit, sys.stdout)
        elif command == "migrate":
            admin.migrate(args.source, args.target, sys.stdout)
        else:
            platforms = configured if command == "auto" else [command]
            options = {
                key: str(value)
                for key, value in vars(args).items()
                if key not in {"command", "env_file"} and value is not None
            }
            asyncio.run(serve(config, platforms, options))
    except ConfigError as exc:
        parser.exit(2, f"error: {exc}\n")
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
