"""One page through every step at once, in the caller's transaction: prepare, read the stored hashes, map, load.

The runner runs these steps apart (preparing ahead, mapping outside the transaction); this composition is
for a caller that has one page and one connection.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from mappings.context import MappingContext
from pipeline.kinds import StreamSpec
from pipeline.storage import load
from pipeline.sync.prepare import prepare_page
from pipeline.sync.rows import PageCounts, map_page


def write_page(
    conn: Connection,
    source: str,
    spec: StreamSpec,
    records: Sequence[Any],
    ctx: MappingContext,
    now: dt.datetime,
    run_id: int | None,
) -> PageCounts:
    """Map and store one page of raw records; bad records go to quarantine. The caller commits."""
    page = prepare_page(records, spec, ctx)
    stored = load.stored_hashes(conn, source, spec.stream.name, list(page.good))
    rows, counts = map_page(page, stored, spec, ctx, source, now, run_id)
    load.write(conn, rows)
    return counts
