"""The garbage collector set for serving many turns at once.

CPython's cyclic collector runs a young collection every 700 new container objects, and an
older one every tenth of those. Each walks every object that survived the collections before
it. A turn in flight keeps its objects alive for as long as the model takes (the SDK's run,
its request and stream, the rows it will store), so with 2,000 turns in flight the collector
kept walking the same few hundred thousand objects: 8 s of the 21 s of CPU the bot spent on
2,000 turns at once (`bench.e2e_bench concurrency`) went to it, and that share grows with the
square of the turns in flight. Nearly everything a turn allocates is freed by reference
counting when it ends, so rarer collections find the same garbage, only later.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG_OBJECTS = 50_000
"""New container objects between two young collections: a few dozen turns' worth, so cyclic
garbage waits a little longer (a few MB at most) and turns in flight are walked far less."""


@contextlib.contextmanager
def collector_for_serving() -> Iterator[None]:
    """Collect less often while the bot serves, and never walk what start-up built.

    Start-up's objects (modules, the agent, the clients) live as long as the process; frozen,
    full collections skip them. The previous settings come back on exit.
    """
    threshold = gc.get_threshold()
    gc.collect()  # what start-up left as garbage, so it is not frozen with the rest
    gc.freeze()
    gc.set_threshold(max(threshold[0], YOUNG_OBJECTS), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
