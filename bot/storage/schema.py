"""The database layout, shared with the SDK's `SQLiteSession`.

The two tables, their columns and the index are exactly the SDK's, so either side can open a
file the other wrote. The bot adds nullable columns only, which the SDK's inserts leave empty.
"""

from __future__ import annotations

import aiosqlite

SESSIONS = "agent_sessions"
MESSAGES = "agent_messages"

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
)


async def ensure_schema(conn: aiosqlite.Connection) -> None:
    """Create or extend the schema in place; safe to run on every start and on SDK files."""
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
    await conn.commit()
