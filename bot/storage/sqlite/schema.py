"""The database layout, shared with the SDK's `SQLiteSession`.

The two tables, their columns and the index are exactly the SDK's, so either side can open a
file the other wrote. The bot adds nullable columns and tables of its own only, which the
SDK never reads and whose triggers keep them right whoever writes the messages.
"""

from __future__ import annotations

import aiosqlite

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

SEARCH_STATE = "bot_search_state"

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

_BOT_COLUMNS = {
    "author_id": "TEXT",
    "author_name": "TEXT",
    # What a turn cost, on the last row the turn stored: the provider's reported usage and the
    # characters the requests carried. On the row, so recording it costs a turn nothing extra.
    "model": "TEXT",
    "input_tokens": "INTEGER",
    "cached_tokens": "INTEGER",
    "output_tokens": "INTEGER",
    "input_chars": "INTEGER",
}


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
    # The usage ledger: what summaries cost, and what deleted turns had cost (copied here by
    # the trigger below when /undo, /forget or retention removes them). Accounting holds no
    # words of the conversation, so it outlives them.
    f"""
    CREATE TABLE IF NOT EXISTS {USAGE} (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        author_id TEXT,
        kind TEXT NOT NULL,
        model TEXT,
        input_tokens INTEGER NOT NULL,
        cached_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        input_chars INTEGER NOT NULL,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
    )
    """,
    f"CREATE INDEX IF NOT EXISTS idx_{USAGE}_session_id ON {USAGE} (session_id, id)",
    f"""
    CREATE TRIGGER IF NOT EXISTS {MESSAGES}_keep_usage AFTER DELETE ON {MESSAGES}
    WHEN OLD.input_tokens IS NOT NULL
    BEGIN
        INSERT INTO {USAGE} (session_id, author_id, kind, model, input_tokens, cached_tokens,
            output_tokens, input_chars, created_at)
        VALUES (OLD.session_id, NULL, 'turn', OLD.model, OLD.input_tokens,
            coalesce(OLD.cached_tokens, 0), coalesce(OLD.output_tokens, 0),
            coalesce(OLD.input_chars, 0), OLD.created_at);
    END
    """,
)

# Contentless: the words live once, in agent_messages; the index holds only what FTS5 needs to
# find and rank them. It is brought up to date when it is about to be searched (and at start-up)
# rather than by an insert trigger: indexing inside every turn's transaction made the store's
# turn 15-20% slower (bench.store_bench), while searches are rare. `indexed_through` is the
# last message ID indexed; only rows up to it have words in the index to remove on delete,
# which re-derives the same words, exact because stored messages are never changed in place.
_SEARCH_OBJECTS = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH} USING fts5(body, content='', "
    "tokenize='unicode61 remove_diacritics 2')",
    f"""
    CREATE TABLE IF NOT EXISTS {SEARCH_STATE} (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        indexed_through INTEGER NOT NULL
    )
    """,
    f"INSERT OR IGNORE INTO {SEARCH_STATE} (id, indexed_through) VALUES (1, 0)",
    f"""
    CREATE TRIGGER IF NOT EXISTS {MESSAGES}_unindex AFTER DELETE ON {MESSAGES}
    WHEN OLD.id <= (SELECT indexed_through FROM {SEARCH_STATE})
    BEGIN
        INSERT INTO {SEARCH} ({SEARCH}, rowid, body)
        SELECT 'delete', OLD.id, words FROM (SELECT {searchable_text("OLD")} AS words)
        WHERE words IS NOT NULL;
    END
    """,
)
INDEX_BATCH = 5_000
"""Messages indexed per transaction when the search index catches up."""


async def index_new_messages(conn: aiosqlite.Connection) -> tuple[int, bool]:
    """Index the next batch of messages stored since the last catch-up, in the caller's
    transaction; returns the new high-water ID and whether the index is now current."""
    rows = list(
        await conn.execute_fetchall(
            f"SELECT (SELECT indexed_through FROM {SEARCH_STATE}), "
            f"(SELECT coalesce(max(id), 0) FROM {MESSAGES})"
        )
    )
    done, newest = int(rows[0][0]), int(rows[0][1])
    through = min(newest, done + INDEX_BATCH)
    if through > done:
        await conn.execute(
            f"INSERT INTO {SEARCH} (rowid, body) SELECT m.id, {searchable_text('m')} "
            f"FROM {MESSAGES} AS m WHERE m.id > ? AND m.id <= ? "
            f"AND {searchable_text('m')} IS NOT NULL",
            (done, through),
        )
        await conn.execute(f"UPDATE {SEARCH_STATE} SET indexed_through = ?", (through,))
    return through, through >= newest


async def _version_1(conn: aiosqlite.Connection) -> None:
    # Also what a file from before versioning (or one the SDK created) needs: every statement
    # is idempotent, and columns are added only where missing.
    for statement in _SDK_TABLES:
        await conn.execute(statement)
    rows = await conn.execute_fetchall(f"PRAGMA table_info({MESSAGES})")
    present = {row[1] for row in rows}
    for column, kind in _BOT_COLUMNS.items():
        if column not in present:
            await conn.execute(f"ALTER TABLE {MESSAGES} ADD COLUMN {column} {kind}")
    for statement in (*_BOT_OBJECTS, *_SEARCH_OBJECTS):
        await conn.execute(statement)


async def _version_2(conn: aiosqlite.Connection) -> None:
    # Turns paused for a tool approval. Not tied to the thread's rows by a foreign key: a
    # thread's first message may be the one waiting, before the thread has any.
    await conn.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {APPROVALS} (
            approval_id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL UNIQUE,
            platform TEXT NOT NULL,
            requester_id TEXT NOT NULL,
            requester_name TEXT NOT NULL,
            calls TEXT NOT NULL,
            state TEXT NOT NULL,
            items TEXT NOT NULL,
            instructions TEXT NOT NULL,
            expires_at TIMESTAMP NOT NULL,
            address TEXT
        )
        """
    )
    await conn.execute(
        f"CREATE INDEX IF NOT EXISTS idx_{APPROVALS}_expires_at ON {APPROVALS} (expires_at)"
    )


async def _version_3(conn: aiosqlite.Connection) -> None:
    # Whom each turn answered, on the row that carries the turn's usage, so usage adds up per
    # person (`/usage`, the daily budget) with one indexed range read instead of a walk back to
    # each turn's user message. Deleted turns keep it in the ledger, as `author_id`.
    rows = await conn.execute_fetchall(f"PRAGMA table_info({MESSAGES})")
    if "asked_by" not in {row[1] for row in rows}:
        await conn.execute(f"ALTER TABLE {MESSAGES} ADD COLUMN asked_by TEXT")
    await conn.execute(
        f"CREATE INDEX IF NOT EXISTS idx_{MESSAGES}_asked_by ON {MESSAGES} (asked_by, created_at) "
        "WHERE asked_by IS NOT NULL"
    )
    await conn.execute(
        f"CREATE INDEX IF NOT EXISTS idx_{USAGE}_author_id ON {USAGE} (author_id, created_at) "
        "WHERE author_id IS NOT NULL"
    )
    await conn.execute(f"DROP TRIGGER IF EXISTS {MESSAGES}_keep_usage")
    await conn.execute(
        f"""
        CREATE TRIGGER {MESSAGES}_keep_usage AFTER DELETE ON {MESSAGES}
        WHEN OLD.input_tokens IS NOT NULL
        BEGIN
            INSERT INTO {USAGE} (session_id, author_id, kind, model, input_tokens, cached_tokens,
                output_tokens, input_chars, created_at)
            VALUES (OLD.session_id, OLD.asked_by, 'turn', OLD.model, OLD.input_tokens,
                coalesce(OLD.cached_tokens, 0), coalesce(OLD.output_tokens, 0),
                coalesce(OLD.input_chars, 0), OLD.created_at);
        END
        """
    )


async def _version_4(conn: aiosqlite.Connection) -> None:
    # Models whose server said they take no image input (`BOT_VISION=auto`), per endpoint, so
    # every worker stops sending them pictures; `learnt_at` lets the bot try again later.
    await conn.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {BLIND_MODELS} (
            model TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            learnt_at TIMESTAMP NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (model, endpoint)
        ) WITHOUT ROWID
        """
    )


async def _version_5(conn: aiosqlite.Connection) -> None:
    # When an approved tool call started running: a process that dies inside the call leaves
    # it set, so the next start says the call may have run instead of asking again.
    rows = await conn.execute_fetchall(f"PRAGMA table_info({APPROVALS})")
    if "running_since" not in {row[1] for row in rows}:
        await conn.execute(f"ALTER TABLE {APPROVALS} ADD COLUMN running_since TIMESTAMP")


async def _version_6(conn: aiosqlite.Connection) -> None:
    # The profile (`BOT_PROFILES`) each turn ran under, beside its usage, and each summary's
    # and paused turn's; NULL is `default`, as for every row from before. Deleted turns keep
    # it in the ledger. And the profiles chosen in the chat, one row per place.
    for table in (MESSAGES, USAGE, APPROVALS):
        rows = await conn.execute_fetchall(f"PRAGMA table_info({table})")
        if "profile" not in {row[1] for row in rows}:
            await conn.execute(f"ALTER TABLE {table} ADD COLUMN profile TEXT")
    await conn.execute(f"DROP TRIGGER IF EXISTS {MESSAGES}_keep_usage")
    await conn.execute(
        f"""
        CREATE TRIGGER {MESSAGES}_keep_usage AFTER DELETE ON {MESSAGES}
        WHEN OLD.input_tokens IS NOT NULL
        BEGIN
            INSERT INTO {USAGE} (session_id, author_id, kind, model, input_tokens, cached_tokens,
                output_tokens, input_chars, profile, created_at)
            VALUES (OLD.session_id, OLD.asked_by, 'turn', OLD.model, OLD.input_tokens,
                coalesce(OLD.cached_tokens, 0), coalesce(OLD.output_tokens, 0),
                coalesce(OLD.input_chars, 0), OLD.profile, OLD.created_at);
        END
        """
    )
    await conn.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {PROFILE_CHOICES} (
            place TEXT PRIMARY KEY,
            profile TEXT NOT NULL,
            chosen_by TEXT NOT NULL,
            chosen_at TIMESTAMP NOT NULL
        ) WITHOUT ROWID
        """
    )


def _count(row: str, sign: str, turn: str) -> str:
    """The statement adding (`sign` +) or taking away (-) one usage row's turn and tokens
    for its day; `row` is NEW or OLD, `turn` whether it counts as a turn."""
    return f"""
        INSERT INTO {USAGE_DAYS} (day, platform, model, turns, tokens)
        VALUES (substr({row}.created_at, 1, 10),
            substr({row}.session_id, 1, instr({row}.session_id, ':')),
            coalesce({row}.model, ''),
            {sign}({turn}), {sign}({row}.input_tokens + coalesce({row}.output_tokens, 0)));"""


async def _version_7(conn: aiosqlite.Connection) -> None:
    # Usage per day, platform and model (the overview's charts), kept as rows come and go:
    # every row that carries usage counts while it exists, a turn's row and the ledger's
    # alike, so a deleted turn moving into the ledger leaves its day's figures unchanged.
    # Counted from what the file holds now, then by triggers. And an index for reading a
    # period's usage (today's, a month's) without walking every message.
    await conn.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {USAGE_DAYS} (
            day TEXT NOT NULL,
            platform TEXT NOT NULL,
            model TEXT NOT NULL,
            turns INTEGER NOT NULL,
            tokens INTEGER NOT NULL
        )
        """
    )
    await conn.execute(f"CREATE INDEX IF NOT EXISTS idx_{USAGE_DAYS}_day ON {USAGE_DAYS} (day)")
    await conn.execute(
        f"""
        INSERT INTO {USAGE_DAYS} (day, platform, model, turns, tokens)
        SELECT substr(created_at, 1, 10), substr(session_id, 1, instr(session_id, ':')),
            coalesce(model, ''), count(CASE WHEN turn THEN 1 END),
            sum(input_tokens + coalesce(output_tokens, 0))
        FROM (
            SELECT session_id, model, input_tokens, output_tokens, created_at, 1 AS turn
            FROM {MESSAGES} WHERE input_tokens IS NOT NULL
            UNION ALL
            SELECT session_id, model, input_tokens, output_tokens, created_at, kind = 'turn'
            FROM {USAGE})
        GROUP BY 1, 2, 3
        """
    )
    for table, when, turn in (
        (MESSAGES, "WHEN {row}.input_tokens IS NOT NULL", "1"),
        (USAGE, "", "{row}.kind = 'turn'"),
    ):
        for event, row, sign in (("INSERT", "NEW", ""), ("DELETE", "OLD", "-")):
            name = f"{table}_{'count' if event == 'INSERT' else 'uncount'}_usage"
            await conn.execute(
                f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON {table} "
                f"{when.format(row=row)} BEGIN {_count(row, sign, turn.format(row=row))} END"
            )
    await conn.execute(
        f"CREATE INDEX IF NOT EXISTS idx_{MESSAGES}_spent_at ON {MESSAGES} (created_at) "
        "WHERE input_tokens IS NOT NULL"
    )
    await _thread_totals(conn)


_SPENT = "{row}.input_tokens + coalesce({row}.output_tokens, 0)"


async def _thread_totals(conn: aiosqlite.Connection) -> None:
    # Each thread's items and tokens (its turns' and its ledger's, as `thread_usage` adds
    # them) on its own row, kept by triggers: a list of threads then costs its rows, never a
    # walk through long threads. A thread's turns run one at a time, so nothing waits on it.
    rows = await conn.execute_fetchall(f"PRAGMA table_info({SESSIONS})")
    present = {row[1] for row in rows}
    for column in ("items", "tokens"):
        if column not in present:
            await conn.execute(
                f"ALTER TABLE {SESSIONS} ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
            )
    await conn.execute(
        f"""
        UPDATE {SESSIONS} SET
            items = (SELECT count(*) FROM {MESSAGES} AS m
                     WHERE m.session_id = {SESSIONS}.session_id),
            tokens = coalesce((SELECT sum({_SPENT.format(row="m")}) FROM {MESSAGES} AS m
                               WHERE m.session_id = {SESSIONS}.session_id
                                 AND m.input_tokens IS NOT NULL), 0)
                   + coalesce((SELECT sum({_SPENT.format(row="u")}) FROM {USAGE} AS u
                               WHERE u.session_id = {SESSIONS}.session_id), 0)
        """
    )
    changes = (
        (MESSAGES, "INSERT", "NEW", "+", "items = items + 1, "),
        (MESSAGES, "DELETE", "OLD", "-", "items = items - 1, "),
        (USAGE, "INSERT", "NEW", "+", ""),
        (USAGE, "DELETE", "OLD", "-", ""),
    )
    for table, event, row, sign, items in changes:
        await conn.execute(
            f"""
            CREATE TRIGGER IF NOT EXISTS {table}_{event.lower()}_thread_totals
            AFTER {event} ON {table}
            BEGIN
                UPDATE {SESSIONS}
                SET {items}tokens = tokens {sign} coalesce({_SPENT.format(row=row)}, 0)
                WHERE session_id = {row}.session_id;
            END
            """
        )
    await conn.execute(f"CREATE INDEX IF NOT EXISTS idx_{USAGE}_created_at ON {USAGE} (created_at)")


MIGRATIONS = (
    _version_1,
    _version_2,
    _version_3,
    _version_4,
    _version_5,
    _version_6,
    _version_7,
)
"""Schema versions in order; the file's `PRAGMA user_version` says how many have run.
Append to this, never edit a released step."""


async def ensure_schema(conn: aiosqlite.Connection) -> None:
    """Bring the file's schema to this release's version, each step in its own transaction.

    Safe on every start, on a file from an earlier release and on a file the SDK created.
    """
    while True:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            rows = list(await conn.execute_fetchall("PRAGMA user_version"))
            version = int(rows[0][0])
            if version > len(MIGRATIONS):
                raise SchemaTooNewError(
                    f"the memory file is at schema version {version}, newer than this bot "
                    f"knows ({len(MIGRATIONS)}); upgrade the bot"
                )
            if version == len(MIGRATIONS):
                await conn.rollback()
                return
            await MIGRATIONS[version](conn)
            await conn.execute(f"PRAGMA user_version = {version + 1}")
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise
