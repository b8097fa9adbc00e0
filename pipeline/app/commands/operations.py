"""Steering a pipeline without editing its database: ``state show|reset`` and ``quarantine list|retry``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from pipeline.app.console import check_sources, err, fail, load_config, open_existing, out

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from pipeline.config import Config

state_app = typer.Typer(help="The stored cursors: show them, or reset a stream to start from its beginning.")
quarantine_app = typer.Typer(help="The quarantined records: list them, or map them again with the current code.")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
OneSource = Annotated[
    str | None, typer.Option("--source", "-s", metavar="NAME", help="Only this source.", show_default=False)
]


def state_rows(config: Config, engine: Engine, source: str | None) -> list[dict[str, Any]]:
    """Each configured stream (of ``source``), then any stream with a stored cursor that the configuration no
    longer names: its cursor as ``status`` shows it, when it was written, and the lease on it."""
    from pipeline.app.status import shown_cursor
    from pipeline.kinds import stream_names
    from pipeline.storage import cursors, leases
    from pipeline.storage.db import reading, utcnow
    from pipeline.storage.plain import aware

    with reading(engine).connect() as conn:
        stored = {(row["source"], row["stream"]): row for row in cursors.stored_cursors(conn, source)}
        held = leases.held(conn)
    now = utcnow()
    wanted = [(name, stream) for name, s in config.sources.items() for stream in stream_names(s)]
    keys = [k for k in wanted if source in (None, k[0])] + [k for k in stored if k not in wanted]
    rows = []
    for key in keys:
        row = stored.get(key)
        lease = held.get(key)
        expires = None if lease is None else aware(lease[1])
        rows.append(
            {
                "source": key[0],
                "stream": key[1],
                "configured": key in wanted,
                "cursor": None if row is None else shown_cursor(dict(row["cursor"] or {})),
                "updated_at": None if row is None else aware(row["updated_at"]).isoformat(timespec="seconds"),
                "lease": None
                if lease is None or expires is None
                else {"holder": lease[0], "expires_at": expires.isoformat(timespec="seconds"), "live": expires > now},
            }
        )
    return rows


@state_app.command("show")
def state_show(ctx: typer.Context, source: OneSource = None, as_json: JsonOption = False) -> None:
    """Each stream's stored cursor (where its next run continues), when it was written, and who holds it.

    A stream without a cursor starts from its beginning. Continuation tokens and next links show by their
    length only: a source chose their text."""
    from rich.table import Table

    config = load_config(ctx)
    rows = state_rows(config, open_existing(config), source)
    if source is not None and not rows:
        fail(f"--source {source!r}: no such source and no stored state (configured: {', '.join(config.sources)})", 2)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="stream state")
    for column in ("source", "stream", "cursor", "written", "lease"):
        table.add_column(column)
    for row in rows:
        lease = row["lease"]
        held = "" if lease is None else f"{'held' if lease['live'] else 'lapsed'}: {lease['holder']}"
        table.add_row(
            row["source"] + ("" if row["configured"] else " (not configured)"),
            row["stream"],
            "none: starts from the beginning" if row["cursor"] is None else escape(json.dumps(row["cursor"])),
            row["updated_at"] or "",
            escape(held),
        )
    out.print(table)


@state_app.command("reset")
def state_reset(
    ctx: typer.Context,
    source: Annotated[str, typer.Option("--source", "-s", metavar="NAME", help="The source whose state goes.")],
    streams: Annotated[
        list[str] | None,
        typer.Option("--stream", "-t", metavar="STREAM", help="Only this stream (repeatable; default: all)."),
    ] = None,
) -> None:
    """Forget the stream's cursor: its next run starts from its beginning. Stored records stay, and those
    read again unchanged cost no write. Refused while another process runs the stream.

    Gauges readings then start again from the first patient; each patient's readings are still asked from
    the date of its latest stored reading (backfill asks for all of them)."""
    from canonical.errors import LeaseHeldError
    from pipeline.kinds import stream_names
    from pipeline.storage import cursors
    from pipeline.storage.db import reading

    config = load_config(ctx)
    engine = open_existing(config)
    with reading(engine).connect() as conn:
        stored = [row["stream"] for row in cursors.stored_cursors(conn, source)]
    known = stream_names(config.sources[source]) if source in config.sources else []
    known += [s for s in stored if s not in known]
    if not known:
        check_sources(config, [source])
    chosen = streams or known
    unknown = [s for s in chosen if s not in known]
    if unknown:
        fail(f"--stream {unknown[0]!r}: {source} has no such stream ({', '.join(known)})", 2)
    try:
        with database_errors("state reset"):
            before = reset_streams(engine, source, chosen)
    except LeaseHeldError as exc:
        fail(f"state reset refused, nothing was reset: {exc}", 1)
    for stream in chosen:
        cursor = before.get(stream)
        said = "had no cursor" if cursor is None else "cursor cleared"
        out.print(f"{escape(source)}/{escape(stream)}: {said}; the next run starts from the beginning", highlight=False)


@contextmanager
def database_errors(command: str) -> Iterator[None]:
    """A database failure (locked, gone, the lease lost meanwhile) as one line and exit 1, not a traceback; what
    was committed before it stays."""
    from sqlalchemy.exc import SQLAlchemyError

    from canonical.errors import LeaseLostError
    from pipeline.sync.messages import database_reason

    try:
        yield
    except SQLAlchemyError as exc:
        fail(f"{command}: database: {database_reason(exc)}", 1)
    except LeaseLostError as exc:
        fail(f"{command}: {exc}", 1)


def reset_streams(engine: Engine, source: str, streams: list[str]) -> dict[str, Any]:
    """Delete the streams' cursors, each stream held meanwhile, so no run is between two of its pages; all or
    none: ``LeaseHeldError`` if another process holds any of them. Returns the cursors there were."""
    import structlog

    from pipeline.storage import cursors, leases

    claims = []
    try:
        for stream in streams:
            claims.append(leases.claim_stream(engine, source, stream))
        with engine.begin() as conn:
            before = {row["stream"]: row["cursor"] for row in cursors.stored_cursors(conn, source)}
            cursors.delete_cursors(conn, source, streams)
    finally:
        for claim in claims:
            claim.release()
    structlog.get_logger(__name__).info("state reset", source=source, streams=streams)
    return {stream: before[stream] for stream in streams if stream in before}


@quarantine_app.command("list")
def quarantine_list(ctx: typer.Context, source: OneSource = None, as_json: JsonOption = False) -> None:
    """Each quarantined record: its source, stream and key, why it was refused, and when.

    The reasons name the field and never quote its value; the stored payloads are not shown."""
    from rich.table import Table

    from pipeline.app.status import shown_quarantine
    from pipeline.storage import quarantine
    from pipeline.storage.db import reading

    config = load_config(ctx)
    engine = open_existing(config)
    with reading(engine).connect() as conn:
        shown = shown_quarantine(quarantine.listed(conn, source))
    if as_json:
        out.print_json(json.dumps(shown))
        return
    if not shown:
        out.print("no quarantined records" + (f" of {escape(source)}" if source else ""), highlight=False)
        return
    table = Table(title=f"{len(shown)} quarantined records")
    for column in ("source", "stream", "key", "reason", "since"):
        table.add_column(column)
    for row in shown:
        table.add_row(*(escape(str(row[c])) for c in ("source", "stream", "source_key", "reason", "created_at")))
    out.print(table)
    out.print("map them again with the current code: patientsync quarantine retry", highlight=False)


@quarantine_app.command("retry")
def quarantine_retry(ctx: typer.Context, source: OneSource = None) -> None:
    """Map the quarantined records' stored payloads again with the current code: those now valid land (with
    their crosswalk, care links and identity) and leave quarantine; the rest stay, with today's reason.

    Exit 1 if a stream could not be retried because another process runs it."""
    from rich.table import Table

    from pipeline.sync.retry import retry_quarantine

    config = load_config(ctx)
    check_sources(config, [source] if source else None)
    engine = open_existing(config)
    with database_errors("quarantine retry"):
        results, linked = retry_quarantine(config, engine, [source] if source else None)
    if not results:
        out.print("no quarantined records to retry", highlight=False)
        return
    table = Table(title="quarantine retry")
    for column in ("source", "stream", "retried", "landed", "still quarantined", "already stored", "not judged"):
        table.add_column(column, justify="left" if column in ("source", "stream") else "right")
    for r in results:
        numbers = (r.retried, r.landed, r.still_bad, r.stale, r.kept)
        table.add_row(r.source, r.stream, *(("-",) * 5 if r.skipped else map(str, numbers)))
    out.print(table)
    if linked is not None:
        out.print(f"{linked.linked} landed patients linked: {linked.joined} joined a person", highlight=False)
    skipped = [r for r in results if r.skipped]
    for r in skipped:
        err.print(f"[yellow]{escape(r.source)}/{escape(r.stream)}:[/] not retried: {escape(r.skipped or '')}")
    raise typer.Exit(1 if skipped else 0)
