"""Moving a thread between databases: its whole memory out, exactly, and in again as new."""

from __future__ import annotations

from .codec import thread_dump, usage_values
from .primitives import Primitives, Scope, Transaction
from .records import ThreadDump


class Dumps(Primitives):
    """`dump_thread` and `load_thread`, over the back end's primitives."""

    async def dump_thread(self, session_id: str) -> ThreadDump:
        """Everything stored for a thread, exactly as stored: items, authors, times, usage,
        summaries; one snapshot of them where the back end has concurrent writers."""
        sql = self._sql

        async def dump(tx: Transaction) -> ThreadDump:
            times = await tx.rows(sql.dump_times, session_id)
            return thread_dump(
                session_id,
                times[0] if times else None,
                await tx.rows(sql.dump_messages, session_id),
                await tx.rows(sql.dump_summaries, session_id),
                await tx.rows(sql.dump_ledger, session_id),
                sql.dialect.time_of,
            )

        return await self._transaction(dump, Scope(session_id, snapshot=True, read_only=True))

    async def all_session_ids(self) -> list[str]:
        """Every thread the database holds anything of: its memory, or only the usage a
        forgotten thread left in the ledger."""
        return [row[0] for row in await self._read(self._sql.all_session_ids)]

    async def load_thread(self, dump: ThreadDump) -> bool:
        """Store a dumped thread under its own ID, in one transaction, unless it is here.

        Returns False, and writes nothing, when the database knows the thread already. The
        thread's lock is taken first: two copies of one thread loading at once would both
        see it absent. A dump holding nothing but ledger rows is a forgotten thread's: they
        are stored without registering the thread, which stays forgotten.
        """
        sql = self._sql
        stamp = sql.dialect.stamp
        thread = dump.session_id

        async def load(tx: Transaction) -> bool:
            if (await tx.rows(sql.thread_known, thread))[0][0]:
                return False
            new_ids: dict[int, int] = {}
            if not dump.forgotten:
                new_ids = await self._load_messages(tx, dump)
            await tx.run_many(
                sql.load_summary,
                [
                    (thread, new_ids[s.covers_id], s.text, stamp(s.created_at))
                    for s in dump.summaries
                    if s.covers_id in new_ids
                ],
            )
            await tx.run_many(
                sql.load_ledger,
                [
                    (
                        thread,
                        entry.author_id,
                        entry.kind,
                        *usage_values(entry.usage),
                        stamp(entry.created_at),
                    )
                    for entry in dump.ledger
                ],
            )
            return True

        return await self._transaction(load, Scope(thread, exclusive=True))

    async def _load_messages(self, tx: Transaction, dump: ThreadDump) -> dict[int, int]:
        """Register the thread and store its messages in one batch; returns each message's
        new ID by its ID in the dump."""
        sql = self._sql
        stamp = sql.dialect.stamp
        thread = dump.session_id
        await tx.run(sql.load_session, thread, stamp(dump.created_at), stamp(dump.updated_at))
        await tx.run_many(
            sql.load_message,
            [
                (
                    thread,
                    message.data,
                    message.author.id if message.author else None,
                    message.author.name if message.author else None,
                    stamp(message.created_at),
                    *usage_values(message.usage),
                    message.asked_by,
                )
                for message in dump.messages
            ],
        )
        # The thread was new and is locked, and IDs rise in the order rows go in.
        loaded = await tx.rows(sql.loaded_ids, thread)
        await tx.run(sql.load_updated, thread, stamp(dump.updated_at))
        return {message.id: int(row[0]) for message, row in zip(dump.messages, loaded, strict=True)}
