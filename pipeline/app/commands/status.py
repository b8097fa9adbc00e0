"""``status``: per source and stream, the cursor, the last run, stored and quarantined records, lag."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from pipeline.app.console import load_config, open_plain, out, print_run_message


def status(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Per source and stream: cursor, last run, stored and quarantined records, lag, shared identifiers."""
    from rich.table import Table

    from pipeline.app.status import stream_status

    config = load_config(ctx)
    with open_plain(config) as db:
        rows = stream_status(config, db)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="streams")
    for column in ("source", "stream", "cursor", "records", "quarantined", "last run", "finished", "lag"):
        table.add_column(column)
    for row in rows:
        run = row["last_run"]
        table.add_row(
            row["source"],
            row["stream"],
            escape(json.dumps(row["cursor"])),  # an anchor is a source's key: text, never markup
            str(row["records"]),
            str(row["quarantined"]),
            "never" if run is None else f"{run['mode']} {run['status']} (+{run['inserted']} ~{run['updated']})",
            "" if run is None else str(run["finished_at"] or ""),
            "" if row["lag_seconds"] is None else f"{row['lag_seconds']}s",
        )
    out.print(table)
    for row in rows:
        if row["conflicts"]:
            # Counted only: the identifiers themselves may be patient file numbers.
            n = row["conflicts"]
            shared = f"{n} identifier{'' if n == 1 else 's'} shared by more than one record"
            prefix = escape(f"{row['source']}/{row['stream']}:")
            out.print(f"[yellow]{prefix}[/] {shared} (see the crosswalk_conflict view)", highlight=False)
    for row in rows:
        if row["last_run"] is not None:
            print_run_message(row["source"], row["stream"], row["last_run"]["status"], row["last_run"]["error"])
