"""`python -m bot`: run the bot (console by default) or look at its memory."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import datetime

from .admin import threads as admin
from .admin.portable import FormatError
from .admin.usage_report import parse_day, print_usage
from .app import serve
from .config import ConfigError, load_config
from .ops.logs import configure_logging
from .platforms import available_adapters, configured_platforms, secrets
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
    usage = sub.add_parser(
        "usage",
        help="model tokens used, by thread, person, day or model (read-only)",
        description=(
            "Add up the tokens every model call used (turns, undone ones included, and "
            "summaries), grouped as asked. Days are UTC."
        ),
    )
    usage.add_argument("--by", choices=("thread", "user", "day", "model"), default="thread")
    usage.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="from this UTC day on")
    usage.add_argument("--format", choices=("table", "csv"), default="table")
    export = sub.add_parser(
        "export",
        help="write threads' whole memory as JSON Lines (for import) or Markdown (read-only)",
        description=(
            "Write each named thread (or every one, with --all): its items, authors, times, "
            "usage and summaries as JSON Lines that `import` reads back exactly, or as a "
            "readable Markdown transcript."
        ),
    )
    export.add_argument("sessions", nargs="*", metavar="SESSION", help="as `sessions` lists them")
    export.add_argument("--all", dest="everything", action="store_true", help="every thread")
    export.add_argument("--format", choices=("jsonl", "markdown"), default="jsonl")
    export.add_argument("--output", metavar="FILE", help="write here instead of to stdout")
    imports = sub.add_parser(
        "import",
        help="read threads from a JSON Lines export (safe to repeat)",
        description=(
            "Store every thread of an export, each in one transaction. A thread the memory "
            "already holds is left alone (and reported as identical or different), so "
            "importing a file twice stores it once."
        ),
    )
    imports.add_argument("file", metavar="FILE", help="an export's JSON Lines, or - for stdin")
    forget = sub.add_parser(
        "forget-user",
        help="delete everything one person wrote, and the replies to them",
        description=(
            "Delete every message PERSON wrote in PLATFORM's threads, the bot's replies and "
            "tool steps that answered them, the summaries that covered them and their pending "
            "approvals; usage records keep their token counts but no longer name them. For "
            "honouring a deletion request: see the README."
        ),
    )
    forget.add_argument("platform", metavar="PLATFORM", help="discord, slack or console")
    forget.add_argument("user_id", metavar="USER_ID", help="their ID on that platform")
    forget.add_argument("--dry-run", action="store_true", help="count, change nothing")
    return parser


def _day(raw: str) -> datetime:
    try:
        return parse_day(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
            fmt=config.log_format,
        )
        if command == "sessions":
            admin.list_sessions(config, sys.stdout)
        elif command == "history":
            admin.print_history(config, args.session_id, args.limit, sys.stdout)
        elif command == "migrate":
            admin.migrate(args.source, args.target, sys.stdout)
        elif command == "usage":
            print_usage(config, args.by, args.since, args.format, sys.stdout)
        elif command == "export":
            admin.export_threads(
                config,
                args.sessions,
                everything=args.everything,
                fmt=args.format,
                output=args.output,
                out=sys.stdout,
            )
        elif command == "import":
            admin.import_threads(config, args.file, sys.stdout)
        elif command == "forget-user":
            admin.forget_user(
                config,
                args.platform,
                args.user_id,
                dry_run=args.dry_run,
                out=sys.stdout,
                known_platforms=sorted(available_adapters()),
            )
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
    except FormatError as exc:
        parser.exit(1, f"error: {exc}; nothing of that thread was imported\n")
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
