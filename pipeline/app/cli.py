"""The ``patientsync`` command line (typer): sync, backfill, daemon, status, link, review, person, export, sandbox,
demo."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from pipeline.app.console import (
    Globals,
    SourceOption,
    check_sources,
    err,
    fail,
    load_config,
    open_database,
    open_existing,
    open_unchanged,
    out,
)
from pipeline.app.operations import quarantine_app, state_app

# Each command imports what it needs when it runs: `--help` pays for none of the sync path (SQLAlchemy,
# alembic, httpx, the mappings: most of a second to import on a small machine), and `status` not for alembic.
if TYPE_CHECKING:
    from rich.progress import Progress

    from pipeline.storage.tables import Mode
    from pipeline.sync.runner import RunOptions, RunResult

app = typer.Typer(
    help="Keep a canonical patient database in step with several patient APIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("patientsync")
        except PackageNotFoundError:  # run from a checkout that was never installed
            installed = "unknown (not installed)"
        out.print(f"patientsync {installed}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            # Rich reads "[...]" as markup and would swallow it: round brackets.
            help="Configuration file (default: $PATIENTSYNC_CONFIG, else ./config.yaml).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    log_format: Annotated[
        str,
        typer.Option(metavar="FORMAT", help="json, console, or auto: json unless stderr is a terminal."),
    ] = "auto",
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the installed version and exit."),
    ] = None,
) -> None:
    from pipeline.app import logs

    if log_level.upper() not in logs.LEVELS:
        fail(f"--log-level: unknown level (use one of {', '.join(logs.LEVELS)})", 2)
    if log_format not in logs.FORMATS:
        fail(f"--log-format: unknown format (use one of {', '.join(logs.FORMATS)})", 2)
    logs.configure(log_level, json=None if log_format == "auto" else log_format == "json")
    ctx.obj = Globals(config, log_level)


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

    from pipeline.storage.tables import Status

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

    from pipeline.storage.tables import Status

    table = Table(title="dry run: what would be written (nothing was)" if dry_run else "runs")
    for column in (
        "source",
        "stream",
        "mode",
        "status",
        "fetched",
        "inserted",
        "updated",
        "unchanged",
        "quarantined",
        "deleted",
    ):
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


def print_run_message(source: str, stream: str, status: str, message: str | None) -> None:
    """A run's error, or the warning a successful run left (parents refused), on stderr."""
    if not message:
        return
    from pipeline.storage.tables import Status

    style = "yellow" if status == Status.succeeded else "red"
    prefix = f"{source}/{stream}:"
    text = message.removeprefix(prefix).lstrip()  # source errors already name the stream
    # escape: the text may come from a source's error body, and rich must not read it as markup
    err.print(f"[{style}]{escape(prefix)}[/] {escape(text)}", highlight=False, soft_wrap=True)


def _run(ctx: typer.Context, mode: Mode, sources: list[str] | None, dry_run: bool = False) -> None:
    from pipeline.app.signals import graceful_stop
    from pipeline.sync.runner import RunOptions, run_sources

    config = load_config(ctx)
    check_sources(config, sources)
    with tempfile.TemporaryDirectory(prefix="patientsync-dry-run-") as scratch:
        engine = open_unchanged(config, Path(scratch)) if dry_run else open_database(config)
        options = RunOptions(dry_run=dry_run)
        with graceful_stop(options.stop), progress_bars(options):
            results = run_sources(config, engine, mode, sources, options)
        engine.dispose()
    print_results(results, dry_run)
    if options.stop.is_set():
        err.print("stopped early: the next run continues from the last checkpoint")
        raise typer.Exit(130)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


@app.command()
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
    from pipeline.storage.tables import Mode

    _run(ctx, Mode.incremental, source, dry_run)


@app.command()
def backfill(ctx: typer.Context, source: SourceOption = None) -> None:
    """A full sweep from the start; rerun after a crash and it continues from its last checkpoint.

    A sweep that completes marks records the source no longer has as deleted (deleted_at).
    """
    from pipeline.storage.tables import Mode

    _run(ctx, Mode.sweep, source)


@app.command()
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
) -> None:
    """Run each source's sync (schedule) and full refresh (full_refresh) on cron until SIGINT/SIGTERM."""
    from pipeline.app.daemon import run_daemon
    from pipeline.app.metrics import ServeError
    from pipeline.sync.runner import RunOptions

    config = load_config(ctx)
    engine = open_database(config)
    try:
        run_daemon(config, engine, RunOptions(), metrics_port=metrics_port)
    except ServeError as exc:
        fail(f"--metrics-port {metrics_port}: {exc}", 2)


@app.command()
def status(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Per source and stream: cursor, last run, stored and quarantined records, lag, shared identifiers."""
    from rich.table import Table

    from pipeline.app.status import stream_status

    config = load_config(ctx)
    rows = stream_status(config, open_database(config))
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


@app.command()
def link(
    ctx: typer.Context,
    train: Annotated[
        bool, typer.Option("--train", help="Re-estimate the match model from the stored patients.")
    ] = False,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Score every live patient again (manual decisions stay).")
    ] = False,
) -> None:
    """Link every patient not yet linked into persons (sync and backfill do this as they run)."""
    from pipeline.storage import identity as store
    from pipeline.sync.linking import current_model, link_pending

    config = load_config(ctx)
    engine = open_database(config)
    if train:
        from pipeline.sync.linking import train_model

        try:
            model, summary = train_model(engine, current_model(engine), config.identity.match_threshold)
        except ValueError as exc:
            fail(f"link --train: {exc}", 1)
        err.print(f"match model version {model.version} trained: {summary}", highlight=False)
    if rebuild:
        import datetime as dt

        with engine.begin() as conn:
            n = store.queue_all(conn, dt.datetime.now(dt.UTC))
        err.print(f"{n} live patients queued to be scored again")
    with engine.connect() as conn:
        queued = store.pending_count(conn)
    if queued:
        err.print(f"linking {queued} queued patients")
    stats = link_pending(engine, config.identity)
    out.print(
        f"{stats.linked} patients linked: {stats.joined} joined a person, {stats.persons_created} persons created, "
        f"{stats.persons_deleted} deleted, {stats.possible} new possible matches for review"
        + (f"; {stats.skipped_blocks} match keys too common to block on" if stats.skipped_blocks else ""),
        highlight=False,
    )
    with engine.connect() as conn:
        out.print(f"{_people(conn)} persons hold the live patients", highlight=False)


def _people(conn: Any) -> int:
    from sqlalchemy import func, select

    from pipeline.storage.tables import Person, table_of

    person = table_of(Person)
    return int(conn.execute(select(func.count()).where(person.c.deleted_at.is_(None))).scalar() or 0)


review_app = typer.Typer(help="The possible matches: list them, accept or reject one, undo a decision.")
app.add_typer(review_app, name="review")
ShowPii = Annotated[
    bool, typer.Option("--show-pii", help="Show names, dates and contacts even when the output is not a terminal.")
]


@review_app.callback(invoke_without_command=True)
def review(ctx: typer.Context, show_pii: ShowPii = False) -> None:
    """The possible matches (the same as `review list`)."""
    if ctx.invoked_subcommand is None:
        review_list(ctx, show_pii=show_pii)


@review_app.command("list")
def review_list(
    ctx: typer.Context,
    show_pii: ShowPii = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each possible match: the patient's fields beside its candidate person's, the score and the evidence."""
    from rich.table import Table

    from pipeline.app.identity import review_items

    config = load_config(ctx)
    items = review_items(open_database(config), show_pii or out.is_terminal)
    if as_json:
        out.print_json(json.dumps(items, default=str))
        return
    if not items:
        out.print("no possible matches to review")
        return
    for item in items:
        table = Table(
            title=f"link {item['id']}: score {item['score']:.3f} ({item['reason'] or 'possible match'})",
            title_justify="left",
        )
        for column in ("field", f"patient ({item['source']})", "person", "level"):
            table.add_column(column)
        for name, (mine, theirs) in item["fields"].items():
            comparison = {"given_name": "name", "family_name": "name"}.get(name, name)
            level = item["evidence"].get(comparison, {}).get("level", "")
            table.add_row(name, mine or "", theirs or "", level)
        out.print(table)
    out.print("decide with: patientsync review accept ID | reject ID (undo ID takes a decision back)")


LinkId = Annotated[int | None, typer.Argument(metavar="[ID]", help="A link id from `review list`.")]
Band = Annotated[
    str | None, typer.Option("--band", metavar="LOW..HIGH", help="Every open possible match scored in this band.")
]
Pattern = Annotated[
    str | None,
    typer.Option(
        "--pattern",
        metavar="FIELD=LEVEL,...",
        help="Every open possible match at these comparison levels (e.g. name=exact,birth_date=close).",
    ),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what a bulk decision would decide; change nothing.")]


def _decide(
    ctx: typer.Context, link_id: int | None, accept: bool, band: str | None, pattern: str | None, dry_run: bool
) -> None:
    from pipeline.app.identity import NotFound, Selection, decide_bulk, decide_manually, parse_band, parse_pattern

    action = "accept" if accept else "reject"
    if (link_id is None) == (band is None and pattern is None):
        fail(f"review {action}: give a link ID, or --band and/or --pattern for a bulk decision", 2)
    if link_id is not None and dry_run:
        fail(f"review {action}: --dry-run is for a bulk decision (--band, --pattern)", 2)
    config = load_config(ctx)
    if link_id is not None:
        try:
            decided = decide_manually(open_database(config), config.identity, link_id, accept=accept)
        except NotFound as exc:
            fail(str(exc), 2)
        out.print(f"link {link_id}: {decided.status} (patient {decided.patient_id}, person {decided.person_id})")
        return
    try:
        low, high = parse_band(band) if band else (0.0, 1.0)
        selection = Selection(low, high, parse_pattern(pattern or ""))
    except ValueError as exc:
        fail(str(exc), 2)
    bulk = decide_bulk(open_database(config), config.identity, selection, accept, dry_run)
    for link in bulk.links:
        out.print(
            f"link {link['id']}: score {link['score']:.3f} (patient {link['patient_id']}, person {link['person_id']})"
        )
    verb = f"would {action}" if dry_run else f"{action}ed"
    line = f"{verb} {len(bulk.links)} possible matches"
    if bulk.skipped:
        line += f"; {len(bulk.skipped)} skipped (a patient is accepted into one person at most)"
    if bulk.batch:
        line += f"; batch {bulk.batch} (patientsync review undo --bulk {bulk.batch} takes it back)"
    out.print(line)


@review_app.command("accept")
def review_accept(
    ctx: typer.Context, link_id: LinkId = None, band: Band = None, pattern: Pattern = None, dry_run: DryRun = False
) -> None:
    """The patient is this person (a manual decision: never overwritten by linking). With --band or --pattern,
    every open possible match they select, highest score first, as one batch that `undo --bulk` takes back."""
    _decide(ctx, link_id, True, band, pattern, dry_run)


@review_app.command("reject")
def review_reject(
    ctx: typer.Context, link_id: LinkId = None, band: Band = None, pattern: Pattern = None, dry_run: DryRun = False
) -> None:
    """The patient is not this person (a manual decision: never overwritten by linking). With --band or
    --pattern, every open possible match they select, as one batch that `undo --bulk` takes back."""
    _decide(ctx, link_id, False, band, pattern, dry_run)


@review_app.command("undo")
def review_undo(
    ctx: typer.Context,
    link_id: LinkId = None,
    bulk: Annotated[str | None, typer.Option("--bulk", metavar="BATCH", help="Every decision of a bulk batch.")] = None,
) -> None:
    """Take a manual decision back: the patient is linked automatically again."""
    from pipeline.app.identity import NotFound, undo, undo_batch

    if (link_id is None) == (bulk is None):
        fail("review undo: give a link ID or --bulk BATCH", 2)
    config = load_config(ctx)
    engine = open_database(config)
    try:
        if bulk is not None:
            undone = undo_batch(engine, config.identity, bulk)
            out.print(f"undid {len(undone.links)} decisions of batch {bulk}")
            return
        assert link_id is not None
        decided = undo(engine, config.identity, link_id)
    except NotFound as exc:
        fail(str(exc), 2)
    out.print(f"link {link_id}: {decided.status} (patient {decided.patient_id}, person {decided.person_id})")


@app.command()
def person(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="ID_OR_SOURCE_ID", help="A person id, patient id or source id.")],
    show_pii: ShowPii = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One person: its golden record, its patients in each source and all their identifiers."""
    from rich.table import Table

    from pipeline.app.identity import PII_FIELDS, NotFound, find_person, person_view

    config = load_config(ctx)
    engine = open_database(config)
    try:
        view = person_view(engine, find_person(engine, ref))
    except NotFound as exc:
        fail(str(exc), 1)
    shown = show_pii or out.is_terminal
    golden = {
        k: ("<hidden>" if k in PII_FIELDS and not shown and v is not None else v) for k, v in view["person"].items()
    }
    if as_json:
        out.print_json(json.dumps({**view, "person": golden}, default=str))
        return
    record = Table(title=f"person {golden['id']}", title_justify="left", show_header=False)
    for name, value in golden.items():
        if value not in (None, "") and name not in ("id",):
            record.add_row(name, str(value))
    out.print(record)
    ids = Table(title="patients and their identifiers", title_justify="left")
    for column in ("source", "patient", "link", "id_type", "id_value"):
        ids.add_column(column)
    for patient in view["patients"]:
        link = patient["link"] or {}
        how = f"{link.get('status', '')} {link.get('origin', '')}".strip()
        for identifier in patient["identifiers"] or [{"id_type": "", "id_value": ""}]:
            ids.add_row(patient["source"], patient["patient_id"], how, identifier["id_type"], identifier["id_value"])
    out.print(ids)


app.add_typer(state_app, name="state")
app.add_typer(quarantine_app, name="quarantine")
export_app = typer.Typer(help="Write the canonical database out in a standard format.")
app.add_typer(export_app, name="export")


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


@app.command()
def sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8400,
    patients: Annotated[int, typer.Option(help="Synthetic patients per API.")] = 250,
    medics: Annotated[int, typer.Option(help="Synthetic clinicians: Prescrypto medics and profiles doctors.")] = 40,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 1,
) -> None:
    """Serve the simulated source APIs on localhost: /prescrypto, /profiles, /gauges, /particle (Ctrl-C stops)."""
    from sandbox.server import serve

    err.print(f"sandbox on http://127.0.0.1:{port}: /prescrypto, /profiles, /gauges and /particle")
    serve("127.0.0.1", port, patients=patients, medics=medics, seed=seed)


@app.command()
def demo(
    ctx: typer.Context,
    patients: Annotated[int, typer.Option(help="Synthetic patients per API.")] = 250,
    noise: Annotated[
        bool,
        typer.Option(
            help="Each API's copy of a person carries the errors real registries make (typos, nicknames, a moved "
            "address, a digit off in a birth date), beside twins, household members and namesakes."
        ),
    ] = True,
    database: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Database to fill (default: sqlite:///patientsync-demo.db, never the configured one).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the sandbox, sync it into a database of its own and print what landed.

    Each configured source is copied as demo-<name>, pointed at the sandbox. The demo writes to
    patientsync-demo.db in the working directory unless --database names another, so demo rows never land in
    the configured database.
    """
    from pipeline.app.demo import DEMO_DATABASE, run_demo
    from pipeline.sync.runner import RunOptions

    config = load_config(ctx)
    url = database or DEMO_DATABASE
    engine = open_database(config, url)
    err.print(f"demo database: {escape(engine.url.render_as_string(hide_password=True))}", highlight=False)
    options = RunOptions()
    with progress_bars(options):
        results, summary = run_demo(config, engine, patients, options, noise)
    print_results(results)
    summary(out)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
