"""``sync``, ``backfill`` and ``daemon``: the commands that run streams, with their progress bars and the table of
what each run did."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipeline.app.console import (
    SourceOption,
    check_sources,
    err,
    fail,
    load_config,
    open_database,
    open_unchanged,
    out,
    print_run_message,
)

# Each command imports what it needs when it runs: `--help` pays for none of the sync path (SQLAlchemy,
# alembic, httpx, the mappings: most of a second to import on a small machine).
if TYPE_CHECKING:
    from rich.progress import Progress

    from pipeline.storage.run_values import Mode
    from pipeline.sync.runner import RunOptions, RunResult


@contextmanager
def progress_bars(options: RunOptions) -> Iterator[Progress | None]:
    """Rich progress bars, one per stream, when stderr is a terminal; nothing otherwise.

    While they show, ``sys.stderr`` is rich's proxy, which logs write through (pipeline.app.logs): their lines are
    printed above the bars instead of into them. A stream's bar stops its clock when the stream ends.
    """
    if not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline.storage.run_values import Status

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        redirect_stderr=True,
    )
    tasks: dict[tuple[str, str], Any] = {}

    def update(source: str, stream: str, done: int, total: int | None) -> None:
        key = (source, stream)
        if key not in tasks:
            tasks[key] = bars.add_task(f"{source}/{stream}", total=total)
        bars.update(tasks[key], completed=done, total=total)

    def finished(result: RunResult) -> None:
        task = tasks.get((result.source, result.stream))
        if task is not None:
            if result.status == Status.succeeded:
                bars.update(task, total=result.counts.fetched, completed=result.counts.fetched)
            bars.stop_task(task)

    options.progress, options.done = update, finished
    with bars:
        yield bars


def print_results(results: list[RunResult], dry_run: bool = False) -> None:
    from rich.table import Table

    from pipeline.storage.run_values import COUNTS, Status

    table = Table(title="dry run: what would be written (nothing was)" if dry_run else "runs")
    for column in ("source", "stream", "mode", "status", *COUNTS):
        table.add_column(column, justify="right" if column not in ("source", "stream", "mode", "status") else "left")
    for r in results:
        c = r.counts
        style = "yellow" if r.status == Status.skipped else ("green" if r.ok else "red")
        table.add_row(
            r.source,
            r.stream,
            r.mode,
            f"[{style}]{r.status}[/]",
            str(c.fetched),
            str(c.inserted),
            str(c.updated),
            str(c.unchanged),
            str(c.quarantined),
            str(r.deleted),
        )
    out.print(table)
    for r in results:
        print_run_message(r.source, r.stream, r.status, r.error)


def _run(ctx: typer.Context, mode: Mode, sources: list[str] | None, dry_run: bool = False) -> None:
    from pipeline.app.signals import graceful_stop
    from pipeline.sync.runner import RunOptions, run_sources

    config = load_config(ctx)
    check_sources(config, sources)
    # Only a dry run has a scratch directory: a killed run cannot remove one, and a sync may well be killed.
    with tempfile.TemporaryDirectory(prefix="patientsync-dry-run-") if dry_run else nullcontext() as scratch:
        engine = open_unchanged(config, Path(scratch)) if scratch is not None else open_database(config)
        options = RunOptions(dry_run=dry_run)
        with graceful_stop(options.stop), progress_bars(options):
            results = run_sources(config, engine, mode, sources, options)
        engine.dispose()
    print_results(results, dry_run)
    if options.stop.is_set():
        err.print("stopped early: the next run continues from the last checkpoint")
        raise typer.Exit(130)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


def sync(
    ctx: typer.Context,
    source: SourceOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Fetch and map, and report what would be inserted, updated, quarantined and deleted; write "
            "nothing, not even the cursor. Readings are asked for the patients already stored.",
        ),
    ] = False,
) -> None:
    """One incremental pass: each stream continues from its cursor. Exit 1 if any stream failed."""
    from pipeline.storage.run_values import Mode

    _run(ctx, Mode.incremental, source, dry_run)


def backfill(ctx: typer.Context, source: SourceOption = None) -> None:
    """A full sweep from the start; rerun after a crash and it continues from its last checkpoint.

    A sweep that completes marks records the source no longer has as deleted (deleted_at).
    """
    from pipeline.storage.run_values import Mode

    _run(ctx, Mode.sweep, source)


def daemon(
    ctx: typer.Context,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT",
            min=1,
            max=65535,
            help="Also serve Prometheus metrics at /metrics and liveness at /healthz on 127.0.0.1:PORT.",
            show_default=False,
        ),
    ] = None,
    console_port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT",
            min=1,
            max=65535,
            help="Also serve the steward's console (see `console`) on --console-host:PORT.",
            show_default=False,
        ),
    ] = None,
    console_host: Annotated[
        str, typer.Option(metavar="HOST", help="The console's address; beyond loopback it needs console.token.")
    ] = "127.0.0.1",
) -> None:
    """Run each source's sync (schedule) and full refresh (full_refresh) on cron until SIGINT/SIGTERM."""
    from canonical.errors import ConfigError, ServeError
    from pipeline.app.daemon import run_daemon
    from pipeline.sync.runner import RunOptions

    config = load_config(ctx)
    engine = open_database(config)
    console = None
    if console_port is not None:
        from pipeline.app.web.serve import ConsoleServer

        try:
            console = ConsoleServer(config, engine, console_host, console_port)
        except (ConfigError, ServeError) as exc:
            fail(f"--console-port {console_port}: {exc}", 2)
    try:
        run_daemon(config, engine, RunOptions(), metrics_port=metrics_port, console=console)
    except ServeError as exc:
        fail(f"--metrics-port {metrics_port}: {exc}", 2)
