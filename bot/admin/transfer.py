"""Moving memory between databases: `python -m bot migrate --from URL --to URL`.

Thread by thread, each copied in one transaction on the target, so an interrupted run leaves
whole threads only and running it again carries on: threads already there are left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..storage import Store

logger = logging.getLogger(__name__)


@dataclass
class TransferReport:
    """What a copy did, for the person running it."""

    copied: int = 0
    """Threads written to the target."""
    present: int = 0
    """Threads the target already held exactly (a repeated run)."""
    differing: list[str] | None = None
    """Threads the target holds differently (it has moved on, or another source wrote them):
    left as they are."""
    messages: int = 0
    summaries: int = 0
    usage_rows: int = 0

    def lines(self) -> list[str]:
        differing = self.differing or []
        out = [
            f"Copied {self.copied} thread(s): {self.messages} message(s), "
            f"{self.summaries} summary(ies), {self.usage_rows} usage record(s).",
            f"Already there, identical: {self.present} thread(s).",
        ]
        if differing:
            shown = ", ".join(differing[:10]) + (" ..." if len(differing) > 10 else "")
            out.append(f"Left alone, different in the target: {len(differing)} thread(s): {shown}")
        return out


async def copy_memory(source: Store, target: Store) -> TransferReport:
    """Copy every thread of `source` that `target` does not hold yet."""
    report = TransferReport(differing=[])
    for info in await source.list_sessions():
        dump = await source.dump_thread(info.session_id)
        if await target.load_thread(dump):
            report.copied += 1
            report.messages += len(dump.messages)
            report.summaries += len(dump.summaries)
            report.usage_rows += len(dump.ledger)
            continue
        if (await target.dump_thread(info.session_id)).same_memory(dump):
            report.present += 1
        else:
            assert report.differing is not None
            report.differing.append(info.session_id)
            logger.warning("Not copying %s: the target holds it differently", info.session_id)
    return report
