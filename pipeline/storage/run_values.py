"""How a run walks its stream, how it ended and what it counts: the values of ``sync_run.mode`` and
``sync_run.status`` and its count columns, apart from the table models so that ``status`` reads them without
importing SQLAlchemy."""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    """How a run walks its stream (``sync_run.mode``)."""

    incremental = "incremental"  # from the stored tail: only what is new
    sweep = "sweep"  # the whole stream from its start (backfill, full refresh)


class Status(StrEnum):
    """How a run ended (``sync_run.status``; ``skipped`` runs write no row)."""

    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    interrupted = "interrupted"  # stopped on request: the next run continues from the last checkpoint
    skipped = "skipped"  # another process holds the stream's lease
    abandoned = "abandoned"  # its process died; marked when the stream next starts


# What a run counts (``sync_run``'s count columns), in the order status and the run tables show them.
COUNTS = ("fetched", "inserted", "updated", "unchanged", "quarantined", "deleted")
