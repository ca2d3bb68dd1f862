"""The PostgreSQL back end: any number of worker processes on one server."""

from .store import PostgresStore

__all__ = ["PostgresStore"]
