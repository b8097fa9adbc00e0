"""``export fhir``: the canonical database as FHIR R4 Bulk Data files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pipeline.app.console import err, fail, load_config, open_existing, out

export_app = typer.Typer(help="Write the canonical database out in a standard format.")


@export_app.command("fhir")
def export_fhir(
    ctx: typer.Context,
    out_dir: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Directory for the NDJSON files and manifest.json.")
    ],
    since: Annotated[
        str | None,
        typer.Option(
            metavar="INSTANT",
            help="Only what changed after this ISO 8601 instant (UTC unless it names an offset), and what was "
            "deleted since, listed under the manifest's 'deleted'. The previous export's transactionTime gives "
            "every change since it exactly once.",
            show_default=False,
        ),
    ] = None,
    types: Annotated[
        str | None,
        typer.Option(
            "--type", metavar="TYPES", help="Comma-separated resource types (default: all).", show_default=False
        ),
    ] = None,
    validate: Annotated[
        bool, typer.Option("--validate", help="Check every resource against the FHIR R4B models as it is written.")
    ] = False,
    database: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Database to export (default: the configured one; the demo's is sqlite:///patientsync-demo.db).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """FHIR R4 Bulk Data output: Patient (one per person), Practitioner, Organization and Observation NDJSON files
    and manifest.json. Files appear complete or not at all."""
    import datetime as dt

    from pipeline.export.bulk import TYPES, ExportRequest
    from pipeline.export.bulk import export_fhir as run_export
    from pipeline.export.resources import Systems

    chosen = tuple(t.strip() for t in types.split(",") if t.strip()) if types else TYPES
    unknown = [t for t in chosen if t not in TYPES]
    if unknown or not chosen:
        fail(f"--type {(unknown or [''])[0]!r}: not an exported resource type (use {', '.join(TYPES)})", 2)
    instant = None
    if since is not None:
        try:
            instant = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            fail(f"--since {since!r}: not an ISO 8601 instant such as 2026-01-31T12:00:00Z", 2)
        instant = instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)
    config = load_config(ctx)
    engine = open_existing(config, database)
    fhir = config.export.fhir
    request = ExportRequest(
        out=out_dir,
        types=tuple(t for t in TYPES if t in chosen),
        since=instant,
        systems=Systems(fhir.identifier_systems, fhir.license_system),
    )
    validator: Any = None
    if validate:
        from pipeline.export.validate import problems as validator
    try:
        with export_progress() as progress:
            result = run_export(engine, request, progress, validator, waiting=_waiting_for_writes)
    except OSError as exc:
        fail(f"export fhir: cannot write to {out_dir}: {exc.strerror}", 1)
    for entry in result.manifest["output"]:
        out.print(f"{entry['count']:>9} {entry['type']}", highlight=False)
    for entry in result.manifest.get("deleted", []):
        out.print(f"{entry['count']:>9} deleted (Bundle)", highlight=False)
    out.print(f"manifest: {escape(str(out_dir / 'manifest.json'))}", highlight=False)
    if result.invalid:
        fail(f"export fhir: {result.invalid} resources failed validation (see the manifest's error file)", 1)


def _waiting_for_writes() -> None:
    err.print("export fhir: waiting for the writes in flight (a sync's page, a link batch) to commit")


@contextmanager
def export_progress() -> Iterator[Any]:
    """A bar per resource type while an export runs, when stderr is a terminal."""
    if not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    tasks: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as bars:

        def update(resource_type: str, done: int, total: int) -> None:
            if resource_type not in tasks:
                tasks[resource_type] = bars.add_task(resource_type, total=total)
            bars.update(tasks[resource_type], completed=done)

        yield update
