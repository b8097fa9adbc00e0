"""``link``, ``review`` and ``person``: the persons the patients resolve to, and the stewards' decisions."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pipeline.app.console import err, fail, load_config, open_database, out


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
    from pipeline.storage.health import live_persons

    with engine.connect() as conn:
        out.print(f"{live_persons(conn)} persons hold the live patients", highlight=False)


review_app = typer.Typer(help="The possible matches: list them, accept or reject one, undo a decision.")
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
Operator = Annotated[
    str | None,
    typer.Option(
        "--operator",
        metavar="NAME",
        help="Who decides, recorded in identity_history (default: your login name).",
        show_default=False,
    ),
]


def _decide(
    ctx: typer.Context,
    link_id: int | None,
    accept: bool,
    band: str | None,
    pattern: str | None,
    dry_run: bool,
    operator: str | None,
) -> None:
    from canonical.errors import NotFound
    from pipeline.app.identity import (
        Selection,
        decide_bulk,
        decide_manually,
        local_operator,
        parse_band,
        parse_pattern,
    )

    action = "accept" if accept else "reject"
    if (link_id is None) == (band is None and pattern is None):
        fail(f"review {action}: give a link ID, or --band and/or --pattern for a bulk decision", 2)
    if link_id is not None and dry_run:
        fail(f"review {action}: --dry-run is for a bulk decision (--band, --pattern)", 2)
    config = load_config(ctx)
    if link_id is not None:
        try:
            decided = decide_manually(
                open_database(config), config.identity, link_id, accept=accept, operator=local_operator(operator)
            )
        except NotFound as exc:
            fail(str(exc), 2)
        out.print(f"link {link_id}: {decided.status} (patient {decided.patient_id}, person {decided.person_id})")
        return
    try:
        low, high = parse_band(band) if band else (0.0, 1.0)
        selection = Selection(low, high, parse_pattern(pattern or ""))
    except ValueError as exc:
        fail(str(exc), 2)
    bulk = decide_bulk(
        open_database(config), config.identity, selection, accept, dry_run, operator=local_operator(operator)
    )
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
    ctx: typer.Context,
    link_id: LinkId = None,
    band: Band = None,
    pattern: Pattern = None,
    dry_run: DryRun = False,
    operator: Operator = None,
) -> None:
    """The patient is this person (a manual decision: never overwritten by linking). With --band or --pattern,
    every open possible match they select, highest score first, as one batch that `undo --bulk` takes back."""
    _decide(ctx, link_id, True, band, pattern, dry_run, operator)


@review_app.command("reject")
def review_reject(
    ctx: typer.Context,
    link_id: LinkId = None,
    band: Band = None,
    pattern: Pattern = None,
    dry_run: DryRun = False,
    operator: Operator = None,
) -> None:
    """The patient is not this person (a manual decision: never overwritten by linking). With --band or
    --pattern, every open possible match they select, as one batch that `undo --bulk` takes back."""
    _decide(ctx, link_id, False, band, pattern, dry_run, operator)


@review_app.command("undo")
def review_undo(
    ctx: typer.Context,
    link_id: LinkId = None,
    bulk: Annotated[str | None, typer.Option("--bulk", metavar="BATCH", help="Every decision of a bulk batch.")] = None,
    operator: Operator = None,
) -> None:
    """Take a manual decision back: the patient is linked automatically again."""
    from canonical.errors import NotFound
    from pipeline.app.identity import local_operator, undo, undo_batch

    if (link_id is None) == (bulk is None):
        fail("review undo: give a link ID or --bulk BATCH", 2)
    config = load_config(ctx)
    engine = open_database(config)
    try:
        if bulk is not None:
            undone = undo_batch(engine, config.identity, bulk, local_operator(operator))
            out.print(f"undid {len(undone.links)} decisions of batch {bulk}")
            return
        assert link_id is not None
        decided = undo(engine, config.identity, link_id, local_operator(operator))
    except NotFound as exc:
        fail(str(exc), 2)
    out.print(f"link {link_id}: {decided.status} (patient {decided.patient_id}, person {decided.person_id})")


def person(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="ID_OR_SOURCE_ID", help="A person id, patient id or source id.")],
    show_pii: ShowPii = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One person: its golden record, its patients in each source and all their identifiers."""
    from rich.table import Table

    from canonical.errors import NotFound
    from pipeline.app.identity import PII_FIELDS, find_person, person_view

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
