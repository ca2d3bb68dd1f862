"""Every statement both back ends run, each written once and adapted per dialect at import.

`Statements(dialect)` holds one back end's set; each store builds its own once, as a class
attribute, so no statement is built again per call. Statements only one back end has (SQLite's
multi-row insert and FTS5 index, PostgreSQL's `unnest` append, locks and `tsvector` search)
live beside that back end.
"""

from __future__ import annotations

from itertools import product
from typing import get_args

from .codec import APPROVAL_COLUMNS
from .dialect import Dialect
from .layout import (
    APPROVALS,
    BLIND_MODELS,
    MESSAGES,
    PROFILE_CHOICES,
    SESSIONS,
    STORED_COLUMNS,
    SUMMARIES,
    USAGE,
    USAGE_DAYS,
    USAGE_LIST,
)
from .records import UsageGrouping

_SPOKEN = "('user', 'assistant')"
"""The roles of what people and the bot said (everything else is a tool step)."""


def _values(count: int) -> str:
    """A VALUES list of the first `count` parameters."""
    return f"VALUES ({', '.join(f'${n}' for n in range(1, count + 1))})"


_TOTALS = "count(*), coalesce(sum(i), 0), coalesce(sum(c), 0), coalesce(sum(o), 0)"


def _spending(rows_where: str, ledger_where: str) -> str:
    """Every recorded model call: turns' usage on their rows, plus the ledger (summaries, and
    deleted turns), as (session_id, who, kind, model, profile, created_at, i, c, o); `kind` is the
    ledger's, `turn` or `summary`."""
    return f"""
    SELECT session_id, asked_by AS who, 'turn' AS kind, model, profile, created_at,
        input_tokens AS i, coalesce(cached_tokens, 0) AS c, coalesce(output_tokens, 0) AS o
    FROM {MESSAGES} WHERE input_tokens IS NOT NULL{rows_where}
    UNION ALL
    SELECT session_id, author_id, kind, model, profile, created_at, input_tokens, cached_tokens,
        output_tokens
    FROM {USAGE} WHERE 1 = 1{ledger_where}"""


def _usage_report(d: Dialect, by: UsageGrouping, *, since: bool, thread: bool) -> str:
    keys = {
        "thread": "session_id",
        # Calls that answered no one named are told apart by what they were: summaries, or
        # turns whose asker is not recorded (forgotten with forget-user, or older than that).
        "user": f"CASE WHEN who IS NULL THEN kind ELSE {d.platform_of('session_id')} || who END",
        "day": d.day_of("created_at"),
        "model": "coalesce(model, '')",
        "profile": "coalesce(profile, '')",
    }
    where = " AND created_at >= $1" if since else ""
    if thread:
        where += f" AND session_id = ${2 if since else 1}"
    order = "key" if by == "day" else "coalesce(sum(i), 0) + coalesce(sum(o), 0) DESC, key"
    return (
        f"SELECT {keys[by]} AS key, {_TOTALS} FROM ({_spending(where, where)}) AS spent "
        f"GROUP BY 1 ORDER BY {order}"
    )


class Statements:
    """One back end's statements. Parameters are listed where a statement is not obvious."""

    def __init__(self, d: Dialect) -> None:
        self.dialect = d
        sql = d.adapt

        # ----- reads of one thread ---------------------------------------------------------
        page = (
            f"SELECT id, message_data FROM {MESSAGES} WHERE session_id = $1 AND id > $2 "
            f"AND ({d.cast('$3', 'bigint')} IS NULL OR id < $3) ORDER BY id {{order}} LIMIT $4"
        )
        self.page_newest = sql(page.format(order="DESC"))
        """(session_id, after_id, before_id or None, limit) -> (id, message_data)."""
        self.page_oldest = sql(page.format(order="ASC"))
        # The state row (kind 0: the newest summary, the usage of the newest $2 rows), then the
        # newest page of items after the summary (kind 1), in one statement: planning a turn
        # costs one trip to the database. The NULLs are typed for PostgreSQL's UNION.
        self.memory_read = sql(f"""
            SELECT 0, s.covers_id, s.summary, s.created_at, u.tokens, u.chars
            FROM (
                SELECT sum(input_tokens) AS tokens, sum(input_chars) AS chars FROM (
                    SELECT input_tokens, input_chars FROM {MESSAGES} WHERE session_id = $1
                    ORDER BY id DESC LIMIT $2) AS recent
                WHERE input_tokens > 0 AND input_chars > 0) AS u
            LEFT JOIN (
                SELECT summary, covers_id, created_at FROM {SUMMARIES} WHERE session_id = $1
                ORDER BY covers_id DESC LIMIT 1) AS s ON true
            UNION ALL
            SELECT * FROM (
                SELECT 1, id, message_data, CAST(NULL AS TIMESTAMP), CAST(NULL AS BIGINT),
                    CAST(NULL AS BIGINT)
                FROM {MESSAGES}
                WHERE session_id = $1
                  AND id > coalesce((SELECT max(covers_id) FROM {SUMMARIES}
                                     WHERE session_id = $1), 0)
                ORDER BY id DESC LIMIT $3) AS page""")
        """(session_id, rows measured for density, page size)."""
        self.count_messages = sql(
            f"SELECT count(*) FROM {MESSAGES} WHERE session_id = $1 AND id <= $2 "
            f"AND {d.role} IN {_SPOKEN}"
        )
        self.history = sql(
            f"SELECT {STORED_COLUMNS} FROM {MESSAGES} WHERE session_id = $1 "
            "ORDER BY id DESC LIMIT $2 OFFSET $3"
        )
        self.count_items = sql(f"SELECT count(*) FROM {MESSAGES} WHERE session_id = $1")
        self.has_items = sql(f"SELECT EXISTS (SELECT 1 FROM {MESSAGES} WHERE session_id = $1)")
        self.list_sessions = sql(
            f"SELECT s.session_id, count(m.id), s.created_at, s.updated_at FROM {SESSIONS} s "
            f"LEFT JOIN {MESSAGES} m ON m.session_id = s.session_id "
            "GROUP BY s.session_id ORDER BY s.updated_at DESC, s.session_id"
        )
        # A forgotten thread's usage outlives it in the ledger, so that it is still counted.
        self.all_session_ids = sql(
            f"SELECT session_id FROM {SESSIONS} UNION SELECT session_id FROM {USAGE} ORDER BY 1"
        )

        # ----- changes to one thread -------------------------------------------------------
        self.delete_tail = sql(f"DELETE FROM {MESSAGES} WHERE session_id = $1 AND id >= $2")
        self.settle = sql(f"DELETE FROM {APPROVALS} WHERE approval_id = $1")
        self.pop_newest = sql(
            f"DELETE FROM {MESSAGES} WHERE id = (SELECT id FROM {MESSAGES} "
            "WHERE session_id = $1 ORDER BY id DESC LIMIT 1) RETURNING message_data"
        )
        # Walks back from the newest row only as far as the last user message.
        self.undo = sql(
            f"DELETE FROM {MESSAGES} WHERE session_id = $1 AND id >= ("
            f"SELECT id FROM {MESSAGES} WHERE session_id = $1 AND {d.role} = 'user' "
            f"ORDER BY id DESC LIMIT 1) RETURNING {STORED_COLUMNS}"
        )
        self.clear_counts = sql(
            f"SELECT count(*), count(CASE WHEN {d.role} IN {_SPOKEN} THEN 1 END) "
            f"FROM {MESSAGES} WHERE session_id = $1"
        )
        self.clear = tuple(
            sql(f"DELETE FROM {table} WHERE session_id = $1")
            for table in (MESSAGES, SESSIONS, APPROVALS)
        )
        self.idle_messages = sql(
            f"DELETE FROM {MESSAGES} WHERE session_id IN "
            f"(SELECT session_id FROM {SESSIONS} WHERE updated_at < $1)"
        )
        self.idle_sessions = sql(f"DELETE FROM {SESSIONS} WHERE updated_at < $1")

        # ----- summaries -------------------------------------------------------------------
        # Locking the thread's row orders a summary against other workers' summaries; sharing
        # the covered message's makes an /undo deleting it wait, then void the summary.
        self.lock_thread_row = (
            sql(f"SELECT 1 FROM {SESSIONS} WHERE session_id = $1 FOR UPDATE")
            if d.row_locks
            else None
        )
        self.summary_basis = sql(
            f"SELECT (SELECT max(covers_id) FROM {SUMMARIES} WHERE session_id = $1), "
            f"EXISTS (SELECT 1 FROM {MESSAGES} WHERE session_id = $1 AND id = $2"
            f"{' FOR SHARE' if d.row_locks else ''})"
        )
        """(session_id, covers_id) -> (the newest summary's covers_id, whether the row is)."""
        self.insert_summary = sql(
            f"INSERT INTO {SUMMARIES} (session_id, covers_id, summary) {_values(3)}"
        )
        self.prune_summaries = sql(
            f"DELETE FROM {SUMMARIES} WHERE session_id = $1 AND covers_id NOT IN ("
            f"SELECT covers_id FROM {SUMMARIES} WHERE session_id = $1 "
            "ORDER BY covers_id DESC LIMIT $2)"
        )

        # ----- turns paused for an approval ------------------------------------------------
        # What SQLite's INSERT OR REPLACE did: whatever row the new one would clash with goes.
        self.replace_approval = sql(
            f"DELETE FROM {APPROVALS} WHERE session_id = $1 OR approval_id = $2"
        )
        self.insert_approval = sql(f"INSERT INTO {APPROVALS} ({APPROVAL_COLUMNS}) {_values(13)}")
        pending = f"SELECT {APPROVAL_COLUMNS} FROM {APPROVALS} WHERE"
        self.approval = sql(f"{pending} approval_id = $1")
        self.approval_in = sql(f"{pending} session_id = $1")
        self.due_approvals = sql(
            f"{pending} expires_at <= $1 OR running_since IS NOT NULL ORDER BY expires_at"
        )
        self.approval_running = sql(
            f"UPDATE {APPROVALS} SET running_since = $2 WHERE approval_id = $1"
        )
        self.address_approval = sql(f"UPDATE {APPROVALS} SET address = $2 WHERE approval_id = $1")

        # ----- usage -----------------------------------------------------------------------
        self.record_usage = sql(
            f"INSERT INTO {USAGE} (session_id, author_id, kind, {USAGE_LIST}) {_values(9)}"
        )
        thread = " AND session_id = $1"
        self.thread_usage = sql(f"SELECT {_TOTALS} FROM ({_spending(thread, thread)}) AS spent")
        person = f" AND created_at >= $2 AND {d.starts_with('session_id', '$3')}"
        self.person_usage = sql(
            f"SELECT {_TOTALS} FROM ("
            f"{_spending(' AND asked_by = $1' + person, ' AND author_id = $1' + person)}"
            ") AS spent"
        )
        """(user ID, the earliest time, the platform prefix `discord:`)."""
        self.usage_report = {
            (by, since, thread): sql(_usage_report(d, by, since=since, thread=thread))
            for by, since, thread in product(get_args(UsageGrouping), (False, True), (False, True))
        }
        """By (grouping, whether a `since` parameter is given, whether a session ID is: after
        `since`)."""

        # ----- what an operator's page reads (`browsing`) ---------------------------------
        null = d.cast
        threads = f"SELECT session_id, created_at, updated_at, items, tokens FROM {SESSIONS}"
        self.thread_page = sql(
            f"{threads} "
            f"WHERE ({null('$1', 'text')} IS NULL OR {d.starts_with('session_id', '$1')}) "
            f"AND ({null('$2', 'text')} IS NULL OR session_id IN "
            f"(SELECT session_id FROM {MESSAGES} WHERE asked_by = $2)) "
            f"AND ({null('$3', 'timestamp')} IS NULL OR updated_at >= $3) "
            f"AND ({null('$4', 'timestamp')} IS NULL OR updated_at < $4) "
            f"AND ({null('$5', 'timestamp')} IS NULL OR updated_at < $5 "
            "OR (updated_at = $5 AND session_id < $6)) "
            "ORDER BY updated_at DESC, session_id DESC LIMIT $7"
        )
        """(platform prefix `slack:`, person's user ID, active from, active before, the
        previous page's last (updated_at, session_id), limit); each condition None for none.
        Items and tokens are the thread row's own totals (the schema's triggers keep them)."""
        self.thread_row = sql(f"{threads} WHERE session_id = $1")
        self.recent_people = sql(
            "SELECT author_id, max(author_name) FROM ("
            f"SELECT author_id, author_name FROM {MESSAGES} WHERE session_id = $1 "
            "ORDER BY id DESC LIMIT $2) AS recent "
            "WHERE author_id IS NOT NULL GROUP BY author_id ORDER BY author_id"
        )
        """(session_id, rows looked at): who wrote among a thread's newest rows."""
        self.thread_rows = sql(
            f"SELECT {STORED_COLUMNS}, {USAGE_LIST}, asked_by FROM {MESSAGES} "
            f"WHERE session_id = $1 AND ({null('$2', 'bigint')} IS NULL OR id < $2) "
            "ORDER BY id DESC LIMIT $3"
        )
        """(session_id, below this row ID or None, limit): a page of rows, newest first."""
        self.daily_usage = sql(
            "SELECT day, platform, model, sum(turns), sum(tokens) "
            f"FROM {USAGE_DAYS} WHERE day >= $1 GROUP BY 1, 2, 3 "
            "HAVING sum(turns) <> 0 OR sum(tokens) <> 0 ORDER BY 1, 2, 3"
        )
        """(the first UTC day, `YYYY-MM-DD`)."""
        self.take_usage_days = sql(
            f"DELETE FROM {USAGE_DAYS} WHERE day < $1 RETURNING day, platform, model, turns, tokens"
        )
        self.put_usage_day = sql(
            f"INSERT INTO {USAGE_DAYS} (day, platform, model, turns, tokens) {_values(5)}"
        )
        self.active_threads = sql(f"SELECT count(*) FROM {SESSIONS} WHERE updated_at >= $1")
        self.waiting_approvals = sql(f"{pending} 1 = 1 ORDER BY expires_at")

        # ----- profiles chosen in the chat -------------------------------------------------
        self.profile_choices = sql(f"SELECT place, profile FROM {PROFILE_CHOICES}")
        self.profile_choice = sql(f"SELECT profile FROM {PROFILE_CHOICES} WHERE place = $1")
        self.choose_profile = sql(
            f"INSERT INTO {PROFILE_CHOICES} (place, profile, chosen_by, chosen_at) {_values(4)} "
            "ON CONFLICT (place) DO UPDATE SET profile = excluded.profile, "
            "chosen_by = excluded.chosen_by, chosen_at = excluded.chosen_at"
        )
        """(place, profile, who chose it, when)."""
        self.drop_profile_choice = sql(f"DELETE FROM {PROFILE_CHOICES} WHERE place = $1")

        # ----- what the model server said about the model ----------------------------------
        self.blind_since = sql(
            f"SELECT learnt_at FROM {BLIND_MODELS} WHERE model = $1 AND endpoint = $2"
        )
        self.remember_blind = sql(
            f"INSERT INTO {BLIND_MODELS} (model, endpoint, learnt_at, reason) {_values(4)} "
            "ON CONFLICT (model, endpoint) DO UPDATE "
            "SET learnt_at = excluded.learnt_at, reason = excluded.reason"
        )
        """(model, endpoint, when, what the server said)."""

        # ----- moving a thread between databases -------------------------------------------
        self.dump_times = sql(
            f"SELECT created_at, updated_at FROM {SESSIONS} WHERE session_id = $1"
        )
        self.dump_messages = sql(
            f"SELECT {STORED_COLUMNS}, {USAGE_LIST}, asked_by FROM {MESSAGES} "
            "WHERE session_id = $1 ORDER BY id"
        )
        self.dump_summaries = sql(
            f"SELECT covers_id, summary, created_at FROM {SUMMARIES} WHERE session_id = $1 "
            "ORDER BY covers_id"
        )
        self.dump_ledger = sql(
            f"SELECT kind, author_id, {USAGE_LIST}, created_at FROM {USAGE} "
            "WHERE session_id = $1 ORDER BY id"
        )
        self.thread_known = sql(
            f"SELECT EXISTS (SELECT 1 FROM {SESSIONS} WHERE session_id = $1) "
            f"OR EXISTS (SELECT 1 FROM {USAGE} WHERE session_id = $1)"
        )
        self.load_session = sql(
            f"INSERT INTO {SESSIONS} (session_id, created_at, updated_at) {_values(3)}"
        )
        self.load_message = sql(
            f"INSERT INTO {MESSAGES} (session_id, message_data, author_id, author_name, "
            f"created_at, {USAGE_LIST}, asked_by) {_values(12)}"
        )
        """Run once per row in one batch, in order: the IDs are then `loaded_ids`, in order."""
        self.loaded_ids = sql(f"SELECT id FROM {MESSAGES} WHERE session_id = $1 ORDER BY id")
        # SQLite's trigger touches the thread as each row goes in; this puts its time back.
        self.load_updated = sql(f"UPDATE {SESSIONS} SET updated_at = $2 WHERE session_id = $1")
        self.load_summary = sql(
            f"INSERT INTO {SUMMARIES} (session_id, covers_id, summary, created_at) {_values(4)}"
        )
        self.load_ledger = sql(
            f"INSERT INTO {USAGE} (session_id, author_id, kind, {USAGE_LIST}, created_at) "
            f"{_values(10)}"
        )

        # ----- forgetting a person ---------------------------------------------------------
        self.their_threads = sql(
            f"SELECT session_id FROM {MESSAGES} WHERE {d.starts_with('session_id', '$1')} "
            "AND (author_id = $2 OR asked_by = $2) "
            f"UNION SELECT session_id FROM {USAGE} WHERE {d.starts_with('session_id', '$1')} "
            "AND author_id = $2 "
            f"UNION SELECT session_id FROM {APPROVALS} WHERE platform = $3 AND requester_id = $2"
        )
        """(platform prefix, user ID, platform)."""
        self.erasure_rows = sql(
            f"SELECT id, {d.role}, author_id, asked_by, input_tokens IS NOT NULL "
            f"FROM {MESSAGES} WHERE session_id = $1 ORDER BY id"
        )
        """What `erasure.plan_erasure` walks, in thread order."""
        # Whose pending approvals go: theirs, and every one in a thread losing rows.
        # (session_id, whether the thread loses rows, platform, user ID).
        their_approvals = (
            f"FROM {APPROVALS} WHERE session_id = $1 "
            "AND ($2 OR (platform = $3 AND requester_id = $4))"
        )
        self.erasure_counts = sql(
            f"SELECT (SELECT count(*) FROM {SUMMARIES} WHERE session_id = $1 "
            "AND covers_id >= $5), "
            f"(SELECT count(*) {their_approvals}), "
            f"(SELECT count(*) FROM {USAGE} WHERE session_id = $1 AND ($6 OR author_id = $4))"
        )
        """The approval parameters, the first row deleted, whether the thread is their own
        (every ledger row of it names them)."""
        self.erase_rows = sql(f"DELETE FROM {MESSAGES} WHERE {d.one_of_ids('$1')}")
        # A thread left empty goes whole: its ID may be made of theirs (BOT_MEMORY_SCOPE=user).
        self.drop_emptied = sql(
            f"DELETE FROM {SESSIONS} WHERE session_id = $1 "
            f"AND NOT EXISTS (SELECT 1 FROM {MESSAGES} WHERE session_id = $1)"
        )
        self.drop_their_approvals = sql(f"DELETE {their_approvals}")
        # Usage records naming them keep their counts, not their name: the ledger's and the
        # kept rows'. (session_id, user ID).
        self.unname = tuple(
            sql(f"UPDATE {table} SET {column} = NULL WHERE session_id = $1 AND {column} = $2")
            for table, column in ((USAGE, "author_id"), (MESSAGES, "asked_by"))
        )
        # A thread whose ID is made of theirs: its ledger rows move under a name of nobody.
        self.move_ledger = sql(
            f"UPDATE {USAGE} SET session_id = $2, author_id = NULL WHERE session_id = $1"
        )
