"""The PostgreSQL layout: the SDK's `SQLAlchemySession` tables plus the bot's own.

`agent_sessions` and `agent_messages` have exactly the columns, types and defaults that
`SQLAlchemySession(create_tables=True)` gives them, so either side can open a database the
other created; the bot adds nullable columns, its own tables, functions and triggers, which
keep themselves right whoever writes or deletes the messages.

Versions run in order on start-up, each in one transaction, under an advisory lock so that
workers starting together migrate once. `bot_schema` records how far a database has come.
"""

from __future__ import annotations

import logging

import asyncpg

from ..layout import (
    APPROVALS,
    BLIND_MODELS,
    MESSAGES,
    PROFILE_CHOICES,
    SEARCH,
    SESSIONS,
    SUMMARIES,
    USAGE,
    USAGE_DAYS,
    SchemaTooNewError,
)

logger = logging.getLogger(__name__)

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
"""A connection of one's own or one borrowed from the pool: the same to use."""

DELIVERIES = "bot_deliveries"
FENCES = "bot_thread_fences"
"""Each thread lock's fencing epoch (see `locker.py`)."""
SCHEMA = "bot_schema"
MIGRATION_LOCK = 0x6D656D6F7279  # "memory": one key for every worker's schema migration

_VERSION_1 = (
    # The SDK's tables, as SQLAlchemySession creates them (Integer autoincrement is SERIAL on
    # PostgreSQL; TIMESTAMP without time zone, defaulting to the server's clock, read as UTC).
    f"""
    CREATE TABLE IF NOT EXISTS {SESSIONS} (
        session_id VARCHAR NOT NULL PRIMARY KEY,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL,
        updated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {MESSAGES} (
        id SERIAL NOT NULL PRIMARY KEY,
        session_id VARCHAR NOT NULL REFERENCES {SESSIONS} (session_id) ON DELETE CASCADE,
        message_data TEXT NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL
    )
    """,
    f"CREATE INDEX IF NOT EXISTS idx_{MESSAGES}_session_time ON {MESSAGES} "
    "(session_id, created_at)",
    # The bot reads a thread newest-first by ID: O(window) however long the thread is.
    f"CREATE INDEX IF NOT EXISTS idx_{MESSAGES}_session_id ON {MESSAGES} (session_id, id)",
    f"CREATE INDEX IF NOT EXISTS idx_{SESSIONS}_updated_at ON {SESSIONS} (updated_at)",
    *(
        f"ALTER TABLE {MESSAGES} ADD COLUMN IF NOT EXISTS {column} {kind}"
        for column, kind in (
            ("author_id", "TEXT"),
            ("author_name", "TEXT"),
            ("model", "TEXT"),
            ("input_tokens", "INTEGER"),
            ("cached_tokens", "INTEGER"),
            ("output_tokens", "INTEGER"),
            ("input_chars", "INTEGER"),
        )
    ),
    # A message's role and its words, from its JSON text; a row that is not JSON has neither
    # (PostgreSQL 15 has no non-raising cast test).
    """
    CREATE OR REPLACE FUNCTION bot_item(data TEXT) RETURNS JSONB
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
    BEGIN
        RETURN data::jsonb;
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION bot_role(data TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT AS $$
        SELECT CASE WHEN jsonb_typeof(item) = 'object' THEN item ->> 'role' END
        FROM bot_item(data) AS item
    $$
    """,
    # Only what people and the bot said is searchable: never tool calls or their outputs.
    """
    CREATE OR REPLACE FUNCTION bot_words(data TEXT) RETURNS TSVECTOR
    LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT AS $$
        SELECT to_tsvector('simple', coalesce(CASE
            WHEN jsonb_typeof(item) <> 'object' OR item ->> 'role' NOT IN ('user', 'assistant')
                THEN NULL
            WHEN jsonb_typeof(item -> 'content') = 'string' THEN item ->> 'content'
            WHEN jsonb_typeof(item -> 'content') = 'array' THEN (
                SELECT string_agg(part ->> 'text', ' ')
                FROM jsonb_array_elements(item -> 'content') AS part)
        END, ''))
        FROM bot_item(data) AS item
    $$
    """,
    # The search index: each message's words, added when its thread is next searched rather
    # than on insert (bench.store_bench: indexing on insert doubled a turn's server time).
    # Deleting a message deletes its entry with it.
    f"""
    CREATE TABLE IF NOT EXISTS {SEARCH} (
        id INTEGER PRIMARY KEY REFERENCES {MESSAGES} (id) ON DELETE CASCADE,
        session_id VARCHAR NOT NULL,
        words TSVECTOR NOT NULL
    )
    """,
    f"CREATE INDEX IF NOT EXISTS idx_{SEARCH}_words ON {SEARCH} USING gin (words)",
    f"CREATE INDEX IF NOT EXISTS idx_{SEARCH}_session_id ON {SEARCH} (session_id)",
    f"""
    CREATE TABLE IF NOT EXISTS {SUMMARIES} (
        session_id VARCHAR NOT NULL,
        covers_id INTEGER NOT NULL,
        summary TEXT NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL,
        PRIMARY KEY (session_id, covers_id)
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {USAGE} (
        id BIGSERIAL PRIMARY KEY,
        session_id VARCHAR NOT NULL,
        author_id TEXT,
        kind TEXT NOT NULL,
        model TEXT,
        input_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        input_chars INTEGER NOT NULL,
        created_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL
    )
    """,
    f"CREATE INDEX IF NOT EXISTS idx_{USAGE}_session_id ON {USAGE} (session_id, id)",
    # Whoever deletes messages (/undo, /forget, retention, the SDK's pop_item, clear_session
    # or its cascade), no summary may go on covering a message that is gone, and what the
    # deleted turns cost stays in the ledger. Once per statement, over all its deleted rows.
    f"""
    CREATE OR REPLACE FUNCTION bot_messages_deleted() RETURNS TRIGGER
    LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM {SUMMARIES} AS s USING (
            SELECT session_id, min(id) AS first_id FROM gone GROUP BY session_id) AS g
        WHERE s.session_id = g.session_id AND s.covers_id >= g.first_id;
        INSERT INTO {USAGE} (session_id, author_id, kind, model, input_tokens, cached_tokens,
            output_tokens, input_chars, created_at)
        SELECT session_id, NULL, 'turn', model, input_tokens, coalesce(cached_tokens, 0),
            coalesce(output_tokens, 0), coalesce(input_chars, 0), created_at
        FROM gone WHERE input_tokens IS NOT NULL ORDER BY id;
        RETURN NULL;
    END $$
    """,
    f"DROP TRIGGER IF EXISTS {MESSAGES}_deleted ON {MESSAGES}",
    f"""
    CREATE TRIGGER {MESSAGES}_deleted AFTER DELETE ON {MESSAGES}
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION bot_messages_deleted()
    """,
    # Platform events already taken by some worker, so a redelivery is answered once.
    f"""
    CREATE TABLE IF NOT EXISTS {DELIVERIES} (
        key TEXT PRIMARY KEY,
        taken_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )
    """,
    f"CREATE INDEX IF NOT EXISTS idx_{DELIVERIES}_taken_at ON {DELIVERIES} (taken_at)",
)

_VERSION_2 = (
    # Turns paused for a tool approval (see sqlite/schema.py's version 2).
    f"""
    CREATE TABLE IF NOT EXISTS {APPROVALS} (
        approval_id TEXT PRIMARY KEY,
        session_id VARCHAR NOT NULL UNIQUE,
        platform TEXT NOT NULL,
        requester_id TEXT NOT NULL,
        requester_name TEXT NOT NULL,
        calls TEXT NOT NULL,
        state TEXT NOT NULL,
        items TEXT NOT NULL,
        instructions TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL,
        address TEXT
    )
    """,
    f"CREATE INDEX IF NOT EXISTS idx_{APPROVALS}_expires_at ON {APPROVALS} (expires_at)",
)

_VERSION_3 = (
    # Whom each turn answered, on its usage row (see sqlite/schema.py's version 3).
    f"ALTER TABLE {MESSAGES} ADD COLUMN IF NOT EXISTS asked_by TEXT",
    f"CREATE INDEX IF NOT EXISTS idx_{MESSAGES}_asked_by ON {MESSAGES} (asked_by, created_at) "
    "WHERE asked_by IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS idx_{USAGE}_author_id ON {USAGE} (author_id, created_at) "
    "WHERE author_id IS NOT NULL",
    # Deleted turns keep whom they answered in the ledger.
    f"""
    CREATE OR REPLACE FUNCTION bot_messages_deleted() RETURNS TRIGGER
    LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM {SUMMARIES} AS s USING (
            SELECT session_id, min(id) AS first_id FROM gone GROUP BY session_id) AS g
        WHERE s.session_id = g.session_id AND s.covers_id >= g.first_id;
        INSERT INTO {USAGE} (session_id, author_id, kind, model, input_tokens, cached_tokens,
            output_tokens, input_chars, created_at)
        SELECT session_id, asked_by, 'turn', model, input_tokens, coalesce(cached_tokens, 0),
            coalesce(output_tokens, 0), coalesce(input_chars, 0), created_at
        FROM gone WHERE input_tokens IS NOT NULL ORDER BY id;
        RETURN NULL;
    END $$
    """,
)

_VERSION_4 = (
    # Models that take no image input, per endpoint (see sqlite/schema.py's version 4).
    f"""
    CREATE TABLE IF NOT EXISTS {BLIND_MODELS} (
        model TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        learnt_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (model, endpoint)
    )
    """,
)

_VERSION_5 = (
    # When an approved call started running (see sqlite/schema.py's version 5).
    f"ALTER TABLE {APPROVALS} ADD COLUMN IF NOT EXISTS running_since TIMESTAMPTZ",
)

_VERSION_6 = (
    # Each thread lock's fencing epoch (`locker.py`): advanced whenever a worker takes the
    # thread, checked when its turn commits. Keyed by the lock's key, a hash: no thread IDs.
    f"""
    CREATE TABLE IF NOT EXISTS {FENCES} (
        lock_key BIGINT NOT NULL PRIMARY KEY,
        epoch BIGINT NOT NULL
    )
    """,
)

_VERSION_7 = (
    # The profile each turn and summary ran under, and paused turns' (see sqlite/schema.py's
    # version 6); and the profiles chosen in the chat.
    f"ALTER TABLE {MESSAGES} ADD COLUMN IF NOT EXISTS profile TEXT",
    f"ALTER TABLE {USAGE} ADD COLUMN IF NOT EXISTS profile TEXT",
    f"ALTER TABLE {APPROVALS} ADD COLUMN IF NOT EXISTS profile TEXT",
    f"""
    CREATE OR REPLACE FUNCTION bot_messages_deleted() RETURNS TRIGGER
    LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM {SUMMARIES} AS s USING (
            SELECT session_id, min(id) AS first_id FROM gone GROUP BY session_id) AS g
        WHERE s.session_id = g.session_id AND s.covers_id >= g.first_id;
        INSERT INTO {USAGE} (session_id, author_id, kind, model, input_tokens, cached_tokens,
            output_tokens, input_chars, profile, created_at)
        SELECT session_id, asked_by, 'turn', model, input_tokens, coalesce(cached_tokens, 0),
            coalesce(output_tokens, 0), coalesce(input_chars, 0), profile, created_at
        FROM gone WHERE input_tokens IS NOT NULL ORDER BY id;
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {PROFILE_CHOICES} (
        place TEXT NOT NULL PRIMARY KEY,
        profile TEXT NOT NULL,
        chosen_by TEXT NOT NULL,
        chosen_at TIMESTAMP WITHOUT TIME ZONE NOT NULL
    )
    """,
)


def _statement_trigger(function: str, table: str, event: str, rows: str) -> tuple[str, str]:
    """Run `function` once per `event` statement on `table`, its rows as the table `rows`
    (the trigger dropped and made again, so a migration may run twice)."""
    return (
        f"DROP TRIGGER IF EXISTS {function} ON {table}",
        f"""
        CREATE TRIGGER {function} AFTER {event} ON {table}
        REFERENCING {"NEW" if event == "INSERT" else "OLD"} TABLE AS {rows}
        FOR EACH STATEMENT EXECUTE FUNCTION {function}()
        """,
    )


def _counting(table: str, event: str, turn: str) -> tuple[str, str, str]:
    """A statement-level trigger keeping `USAGE_DAYS` right as `table`'s rows with usage
    come (`INSERT`) and go (`DELETE`): its function, and the trigger dropped and made again.
    One row per day, platform and model the statement touched, inserted: nothing waits."""
    sign, rows = ("", "added") if event == "INSERT" else ("-", "gone")
    function = f"bot_{table}_{'count' if event == 'INSERT' else 'uncount'}_usage"
    return (
        f"""
        CREATE OR REPLACE FUNCTION {function}() RETURNS TRIGGER
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO {USAGE_DAYS} (day, platform, model, turns, tokens)
            SELECT to_char(created_at, 'YYYY-MM-DD'), split_part(session_id, ':', 1) || ':',
                coalesce(model, ''), {sign}count(CASE WHEN {turn} THEN 1 END),
                {sign}sum(input_tokens + coalesce(output_tokens, 0))
            FROM {rows} WHERE input_tokens IS NOT NULL
            GROUP BY 1, 2, 3;
            RETURN NULL;
        END $$
        """,
        *_statement_trigger(function, table, event, rows),
    )


def _totalling(table: str, event: str) -> tuple[str, str, str]:
    """A statement-level trigger keeping each thread's `items` and `tokens` right as
    `table`'s rows come and go: its function, and the trigger dropped and made again. One
    update per thread the statement touched; a turn's own statement (the append) has locked
    its thread's row already, so a turn waits for nothing new."""
    sign, rows = ("+", "added") if event == "INSERT" else ("-", "gone")
    items = "count(*)" if table == MESSAGES else "0"
    function = f"bot_{table}_{'add' if event == 'INSERT' else 'take'}_thread_totals"
    return (
        f"""
        CREATE OR REPLACE FUNCTION {function}() RETURNS TRIGGER
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE {SESSIONS} AS s
            SET items = s.items {sign} c.items, tokens = s.tokens {sign} c.tokens
            FROM (
                SELECT session_id, {items} AS items,
                    coalesce(sum(input_tokens + coalesce(output_tokens, 0)), 0) AS tokens
                FROM {rows} GROUP BY session_id) AS c
            WHERE s.session_id = c.session_id;
            RETURN NULL;
        END $$
        """,
        *_statement_trigger(function, table, event, rows),
    )


_VERSION_8 = (
    # Usage per day, platform and model, kept as rows come and go (see sqlite/schema.py's
    # version 7), counted from what the database holds now; and an index for a period's usage.
    f"""
    CREATE TABLE IF NOT EXISTS {USAGE_DAYS} (
        day TEXT NOT NULL,
        platform TEXT NOT NULL,
        model TEXT NOT NULL,
        turns BIGINT NOT NULL,
        tokens BIGINT NOT NULL
    )
    """,
    f"CREATE INDEX IF NOT EXISTS idx_{USAGE_DAYS}_day ON {USAGE_DAYS} (day)",
    f"""
    INSERT INTO {USAGE_DAYS} (day, platform, model, turns, tokens)
    SELECT to_char(created_at, 'YYYY-MM-DD'), split_part(session_id, ':', 1) || ':',
        coalesce(model, ''), count(CASE WHEN turn THEN 1 END),
        sum(input_tokens + coalesce(output_tokens, 0))
    FROM (
        SELECT session_id, model, input_tokens, output_tokens, created_at, true AS turn
        FROM {MESSAGES} WHERE input_tokens IS NOT NULL
        UNION ALL
        SELECT session_id, model, input_tokens, output_tokens, created_at, kind = 'turn'
        FROM {USAGE}) AS spent
    GROUP BY 1, 2, 3
    """,
    *_counting(MESSAGES, "INSERT", "true"),
    *_counting(MESSAGES, "DELETE", "true"),
    *_counting(USAGE, "INSERT", "kind = 'turn'"),
    *_counting(USAGE, "DELETE", "kind = 'turn'"),
    f"CREATE INDEX IF NOT EXISTS idx_{MESSAGES}_spent_at ON {MESSAGES} (created_at) "
    "WHERE input_tokens IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS idx_{USAGE}_created_at ON {USAGE} (created_at)",
    # Each thread's items and tokens on its own row (see sqlite/schema.py's version 7).
    f"ALTER TABLE {SESSIONS} ADD COLUMN IF NOT EXISTS items BIGINT NOT NULL DEFAULT 0",
    f"ALTER TABLE {SESSIONS} ADD COLUMN IF NOT EXISTS tokens BIGINT NOT NULL DEFAULT 0",
    f"""
    UPDATE {SESSIONS} AS s SET items = t.items, tokens = t.tokens
    FROM (
        SELECT session_id, sum(items) AS items, sum(tokens) AS tokens FROM (
            SELECT session_id, count(*) AS items,
                coalesce(sum(input_tokens + coalesce(output_tokens, 0)), 0) AS tokens
            FROM {MESSAGES} GROUP BY session_id
            UNION ALL
            SELECT session_id, 0, sum(input_tokens + output_tokens) FROM {USAGE}
            GROUP BY session_id) AS parts
        GROUP BY session_id) AS t
    WHERE s.session_id = t.session_id
    """,
    *_totalling(MESSAGES, "INSERT"),
    *_totalling(MESSAGES, "DELETE"),
    *_totalling(USAGE, "INSERT"),
    *_totalling(USAGE, "DELETE"),
    # A thread's newest indexed message, read before indexing the thread's newer ones.
    f"CREATE INDEX IF NOT EXISTS idx_{SEARCH}_session_id_id ON {SEARCH} (session_id, id)",
    f"DROP INDEX IF EXISTS idx_{SEARCH}_session_id",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    _VERSION_1,
    _VERSION_2,
    _VERSION_3,
    _VERSION_4,
    _VERSION_5,
    _VERSION_6,
    _VERSION_7,
    _VERSION_8,
)
"""Schema versions in order. Append to this, never edit a released step."""


async def migrate(conn: Connection) -> int:
    """Bring the database to this release's schema; returns the version it is now at."""
    async with conn.transaction():
        # Transaction-scoped, so a worker that dies mid-migration holds nothing afterwards.
        await conn.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA} (version INTEGER NOT NULL)")
        version = await conn.fetchval(f"SELECT max(version) FROM {SCHEMA}") or 0
        if version > len(MIGRATIONS):
            raise SchemaTooNewError(
                f"the memory database is at schema version {version}, newer than this bot "
                f"knows ({len(MIGRATIONS)}); upgrade the bot"
            )
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                await conn.execute(statement)
            await conn.execute(f"INSERT INTO {SCHEMA} (version) VALUES ($1)", number)
            logger.info("Memory database schema migrated to version %d", number)
        return len(MIGRATIONS)


async def stored_version(conn: Connection) -> int:
    """The database's schema version, read without creating anything (0: it has none)."""
    if await conn.fetchval("SELECT to_regclass($1)", SCHEMA) is None:
        return 0
    return int(await conn.fetchval(f"SELECT coalesce(max(version), 0) FROM {SCHEMA}"))
