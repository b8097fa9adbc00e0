"""Python's cyclic garbage collector, set for a process that imports a large program once and then streams
records through it.

By default every 700 allocations start a young collection, and each full collection walks every object the
imports made (SQLAlchemy, pydantic, the table models, phonenumbers' data), none of which is ever garbage. A
linked SQLite backfill of 100,000 patients spent 5.2-5.9 s of 41-44 s of its main process in the collector,
4.1-4.6 s of it in 42 full collections; a re-sync of unchanged records 0.7-0.8 s of 5.8 s (0.12 s of it while
importing), and 0.25 s more in the collections of the interpreter's exit (benchmarks/README.md).
"""

from __future__ import annotations

import gc

# Allocations between two young collections: a page's records are thousands of short-lived containers, most
# freed by their reference counts before a collection would look at them. At most this many young objects wait.
YOUNG_COLLECTION_EVERY = 10_000

_frozen = False


def collect_less() -> None:
    """Young collections every ``YOUNG_COLLECTION_EVERY`` allocations: from a command's start, as its imports
    allocate hundreds of thousands of objects that live until it exits."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, middle, old)


def freeze_imports() -> None:
    """Once a process, after a stream's mapping is imported: every object alive now (the modules, the
    configuration, the engine: kept until the process exits) leaves the collector's walks for good, with the
    little cyclic garbage the imports left (collecting it first would cost a full walk). Reference counting still
    frees what is not cyclic."""
    global _frozen
    if _frozen:
        return
    _frozen = True
    collect_less()
    gc.freeze()
