"""What a database setting names: which back end, which file, and how to show it in logs."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(url: str) -> bool:
    """Whether `url` names a PostgreSQL database (`postgresql://`, also with `+asyncpg`)."""
    return urlsplit(url).scheme.split("+")[0] in _POSTGRES_SCHEMES


def sqlite_path(url: str) -> str:
    """The file a `sqlite:///relative/path` or `sqlite:////absolute/path` URL names.

    Anything that is not a URL is taken as a path already (what `BOT_DB_PATH` holds).
    """
    if not url.startswith("sqlite:"):
        return url
    path = url.removeprefix("sqlite:").removeprefix("//").removeprefix("/")
    return unquote(path) if path else ":memory:"


def asyncpg_url(url: str) -> str:
    """`postgresql+asyncpg://...` (SQLAlchemy's spelling) as the plain URL asyncpg takes."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def redact(url: str) -> str:
    """The URL without its password, safe for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))
