"""The database layout, shared with the SDK's `SQLiteSession`.

The two tables, their columns and the index are exactly the SDK's, so either side can open a
file the other wrote. The bot adds nullable columns and tables of its own only, which the
SDK never reads and whose triggers keep them right whoever writes the messages.
"""

from __future__ import annotations

import aiosqlite

SESSIONS = "agent_sessions"
MESSAGES = "agent_messages"
SUMMARIES = "bot_summaries"
USAGE = "bot_usage"
SEARCH = "bot_search"
TURN_ROWS = "bot_turn_rows"

_SDK_TABLES = (
    f"""
    CREATE TABLE IF NOT EXISTS {SESSIONS} (
        session_id TEXT PRIMARY KEY,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {MESSAGES} (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        message_data TEXT NOT NULL,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        FOREIGN KEY (session_id) REFERENCES {SESSIONS} (session_id)
            ON DELETE CASCADE
    )
    """,
    # The SDK's own index name, so its CREATE INDEX IF NOT EXISTS finds ours. Newest-N reads
    # walk it backwards from the thread's last row: O(N) however long the thread is.
    f"CREATE INDEX IF NOT EXISTS idx_{MESSAGES}_session_id ON {MESSAGES} (session_id, id)",
)

_BOT_COLUMNS = {"author_id": "TEXT", "author_name": "TEXT"}


def searchable_text(row: str) -> str:
    """SQL for the words of a user or assistant message in `row` (NULL for anything else).

    Tool calls and outputs are left out: a search must find what people and the bot said, not
    the echo of an earlier search. A row that is not valid JSON has no words.
    """
    data = f"{row}.message_data"
    return f"""CASE WHEN json_valid({data})
        AND json_extract({data}, '$.role') IN ('user', 'assistant') THEN
        CASE json_type({data}, '$.content')
            WHEN 'text' THEN json_extract({data}, '$.content')
            WHEN 'array' THEN (SELECT group_concat(json_extract(part.value, '$.text'), ' ')
                               FROM json_each({data}, '$.content') AS part)
        END
    END"""


_BOT_OBJECTS = (
    # Retention sweeps find idle threads without scanning every session.
    f"CREATE INDEX IF NOT EXISTS idx_{SESSIONS}_updated_at ON {SESSIONS} (updated_at)",
    # Registering the thread and marking it active inside the message INSERT itself lets a
    # whole append be one statement: one thread hop and one implicit transaction. It runs
    # BEFORE the insert so the row's foreign key is satisfied even with foreign_keys=ON, and is
    # harmless to the SDK's own writes, which do the same upsert by hand.
    f"""
    CREATE TRIGGER IF NOT EXISTS {MESSAGES}_touch_session BEFORE INSERT ON {MESSAGES}
    BEGIN
        INSERT INTO {SESSIONS} (session_id) VALUES (NEW.session_id)
        ON CONFLICT(session_id) DO UPDATE SET updated_at = CURRENT_TIMESTAMP;
    END
    """,
    # A thread's rolling summaries, newest last. Each covers every message up to `covers_id`;
    # a few older ones are kept so an /undo that reaches into summarised messages falls back
    # to the summary before them instead of to nothing.
    f"""
    CREATE TABLE IF NOT EXISTS {SUMMARIES} (
        session_id TEXT NOT NULL,
        covers_id INTEGER NOT NULL,
        summary TEXT NOT NULL,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
        PRIMARY KEY (session_id, covers_id)
    ) WITHOUT ROWID
    """,
    # Whoever deletes messages (/undo, /forget, retention, the SDK's pop_item or
    # clear_session), no summary may go on covering a message that is gone.
    f"""
    CREATE TRIGGER IF NOT EXISTS {MESSAGES}_drop_summaries AFTER DELETE ON {MESSAGES}
    BEGIN
        DELETE FROM {SUMMARIES} WHERE session_id = OLD.session_id AND covers_id >= OLD.id;
    END
    """,
    # What each model call cost, as the provider reported it. Kept after /forget: it is
    # accounting and holds no words of the conversation.
    f"""
    CREATE TABLE IF NOT EXISTS {USAGE} (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        author_id TEXT,
        kind TEXT NOT NULL,
        model TEXT,
        requests INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        input_chars INTEGER NOT NULL,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
    )
    """,
    f"CREATE INDEX IF NOT EXISTS idx_{USAGE}_session_id ON {USAGE} (session_id, id)",
    # A turn's messages and its usage row in ONE insert statement: in autocommit mode that is
    # one atomic transaction and one hop to the connection's thread, where separate inserts
    # inside BEGIN/COMMIT cost four (measured: 1.7x the turn's write time one turn at a time).
    # Rows with message_data go to the conversation, rows with a kind to the accounting.
    f"""
    CREATE VIEW IF NOT EXISTS {TURN_ROWS} AS SELECT
        NULL AS session_id, NULL AS message_data, NULL AS author_id, NULL AS author_name,
        NULL AS kind, NULL AS model, NULL AS requests, NULL AS input_tokens,
        NULL AS cached_tokens, NULL AS output_tokens, NULL AS input_chars
    WHERE 0
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS {TURN_ROWS}_insert INSTEAD OF INSERT ON {TURN_ROWS}
    BEGIN
        INSERT INTO {MESSAGES} (session_id, message_data, author_id, author_name)
        SELECT NEW.session_id, NEW.message_data, NEW.author_id, NEW.author_name
        WHERE NEW.message_data IS NOT NULL;
        INSERT INTO {USAGE} (session_id, author_id, kind, model, requests, input_tokens,
            cached_tokens, output_tokens, input_chars)
        SELECT NEW.session_id, NEW.author_id, NEW.kind, NEW.model, NEW.requests,
            NEW.input_tokens, NEW.cached_tokens, NEW.output_tokens, NEW.input_chars
        WHERE NEW.kind IS NOT NULL;
    END
    """,
)

# Contentless: the words live once, in agent_messages; the index holds only what FTS5 needs to
# find and rank them. Removing a row from it means re-deriving the same words, which is exact
# because stored messages are never changed in place.
_SEARCH_TABLE = (
    f"CREATE VIRTUAL TABLE {SEARCH} USING fts5(body, content='', "
    "tokenize='unicode61 remove_diacritics 2')"
)
_SEARCH_TRIGGERS = (
    f"""
    CREATE TRIGGER IF NOT EXISTS {MESSAGES}_index AFTER INSERT ON {MESSAGES}
    BEGIN
        INSERT INTO {SEARCH} (rowid, body)
        SELECT NEW.id, words FROM (SELECT {searchable_text("NEW")} AS words)
        WHERE words IS NOT NULL;
    END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS {MESSAGES}_unindex AFTER DELETE ON {MESSAGES}
    BEGIN
        INSERT INTO {SEARCH} ({SEARCH}, rowid, body)
        SELECT 'delete', OLD.id, words FROM (SELECT {searchable_text("OLD")} AS words)
        WHERE words IS NOT NULL;
    END
    """,
)


async def ensure_schema(conn: aiosqlite.Connection) -> None:
    """Create or extend the schema in place; safe to run on every start and on SDK files.

    A file from before the search index existed gets it built from every stored message,
    once, in the same transaction that creates it.
    """
    await conn.execute("BEGIN IMMEDIATE")
    for statement in _SDK_TABLES:
        await conn.execute(statement)
    rows = await conn.execute_fetchall(f"PRAGMA table_info({MESSAGES})")
    present = {row[1] for row in rows}
    for column, kind in _BOT_COLUMNS.items():
        if column not in present:
            await conn.execute(f"ALTER TABLE {MESSAGES} ADD COLUMN {column} {kind}")
    for statement in _BOT_OBJECTS:
        await conn.execute(statement)
    found = await conn.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SEARCH,)
    )
    if not list(found):
        await conn.execute(_SEARCH_TABLE)
        await conn.execute(
            f"INSERT INTO {SEARCH} (rowid, body) SELECT m.id, {searchable_text('m')} "
            f"FROM {MESSAGES} AS m WHERE {searchable_text('m')} IS NOT NULL"
        )
    for statement in _SEARCH_TRIGGERS:
        await conn.execute(statement)
    await conn.commit()
