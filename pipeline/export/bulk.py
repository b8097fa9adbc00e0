"""``patientsync export fhir``: the canonical database as FHIR R4 Bulk Data output (NDJSON and a manifest).

Everything is read in one read transaction, a chunk at a time (``pipeline.storage.export``), and written as it
is read: memory does not grow with the tables. Each file is written under a temporary name and renamed once
complete, and ``manifest.json`` last, so a reader never sees half a file, and a manifest only beside the files
it names.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

import orjson
from sqlalchemy import Connection, Engine

from pipeline.export import resources
from pipeline.export.resources import Systems
from pipeline.storage import export as store

TYPES = tuple(store.LISTINGS)  # Patient, Practitioner, Organization, Observation
DELETED_FILE = "deleted.ndjson"
ERROR_FILE = "OperationOutcome.ndjson"
MANIFEST = "manifest.json"

Progress = Callable[[str, int, int], None]  # (resource type, written so far, total)
Validator = Callable[[dict[str, Any]], list[str]]  # a resource's problems (field paths, never values)


@dataclass(frozen=True)
class ExportRequest:
    out: Path
    _: KW_ONLY  # the rest by name
    types: tuple[str, ...] = TYPES
    since: dt.datetime | None = None  # only what changed after this instant, and what was deleted since
    systems: Systems = field(default_factory=Systems)


@dataclass
class ExportResult:
    manifest: dict[str, Any]
    invalid: int = 0  # resources the validator refused (each an OperationOutcome in ERROR_FILE)


def export_fhir(
    engine: Engine,
    request: ExportRequest,
    progress: Progress | None = None,
    validate: Validator | None = None,
    waiting: Callable[[], None] | None = None,
) -> ExportResult:
    """Write the export into ``request.out`` and return its manifest.

    Its ``transactionTime`` is the snapshot's horizon (``store.fenced_snapshot``): the next export
    ``--since`` it writes every change made after this one exactly once. ``waiting`` is called when the export
    must first wait for a write in flight to commit.
    """
    out = request.out.resolve()
    out.mkdir(mode=0o700, parents=True, exist_ok=True)  # patient data: the owner's only, as the database is
    instant = None
    if request.since is not None:  # a naive instant is UTC, as on the command line
        given = request.since if request.since.tzinfo else request.since.replace(tzinfo=dt.UTC)
        instant = given.astimezone(dt.UTC)
    with _Files(out) as files, store.fenced_snapshot(engine, waiting) as (conn, horizon):
        since = None if instant is None else store.changed_since(conn, instant)
        # Written as found (one OperationOutcome per invalid resource), not gathered: memory stays flat.
        with files.writing(ERROR_FILE, "OperationOutcome", "error") as invalid:
            for resource_type in request.types:
                listing = store.LISTINGS[resource_type]
                total = listing.count(conn, since) if progress else 0  # a count costs a pass: only for the bar
                if progress:
                    progress(resource_type, 0, total)
                with files.writing(f"{resource_type}.ndjson", resource_type, "output") as lines:
                    for chunk in listing.chunks(conn, since):
                        for resource in _build(conn, resource_type, chunk, request.systems):
                            found = validate(resource) if validate else None
                            if found:
                                invalid.write(_outcome(f"{resource_type}/{resource['id']}", found))
                            lines.write(resource)
                        if progress:
                            progress(resource_type, lines.count, total)
        if since is not None:
            with files.writing(DELETED_FILE, "Bundle", "deleted") as lines:
                for resource_type in request.types:
                    for resource_id in store.LISTINGS[resource_type].deleted_since(conn, since.instant):
                        lines.write(resources.deletion(resource_type, resource_id))
        manifest = {
            "transactionTime": horizon.isoformat(),
            "request": _request_url(request, instant),
            "requiresAccessToken": False,
            "output": files.listed["output"],
            **({"deleted": files.listed["deleted"]} if since is not None else {}),
            "error": files.listed["error"],
        }
        files.publish(manifest)
    return ExportResult(manifest, invalid=invalid.count)


class _Lines:
    """An NDJSON file being written: one resource a line, counted."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f, self.count = f, 0

    def write(self, resource: dict[str, Any]) -> None:
        self.f.write(orjson.dumps(resource, option=orjson.OPT_APPEND_NEWLINE))
        self.count += 1


class _Files:
    """The export's files, each written under a temporary name in ``out`` and published together once all are
    complete: the old manifest goes first and the new one comes last, so no manifest ever names a file of
    another export, and an export that fails leaves the previous one as it was. An empty file is not kept."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.tag = uuid.uuid4().hex[:12]  # two exports into one directory never write each other's files
        self.complete: list[tuple[Path, Path]] = []  # (temporary, final) names
        self.listed: dict[str, list[dict[str, Any]]] = {"output": [], "deleted": [], "error": []}

    def __enter__(self) -> _Files:
        return self

    def __exit__(self, *_: object) -> None:
        for partial, _final in self.complete:  # what was not published
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()

    @contextmanager
    def writing(self, name: str, resource_type: str, section: str) -> Iterator[_Lines]:
        final = self.out / name
        partial = self._partial(final)
        try:
            with os.fdopen(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb") as f:
                lines = _Lines(f)
                yield lines
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if lines.count:
            self.complete.append((partial, final))
            self.listed[section].append({"type": resource_type, "url": str(final), "count": lines.count})
        else:
            partial.unlink()

    def publish(self, manifest: dict[str, Any]) -> None:
        final = self.out / MANIFEST
        partial = self._partial(final)
        with os.fdopen(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb") as f:
            f.write(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
            f.flush()
            os.fsync(f.fileno())
        self.complete.append((partial, final))
        kept = {final.name for _, final in self.complete}
        for name in [MANIFEST, *(f"{t}.ndjson" for t in TYPES), DELETED_FILE, ERROR_FILE]:
            if name == MANIFEST or name not in kept:  # an earlier export's, which no manifest will name
                (self.out / name).unlink(missing_ok=True)
        for partial, final in self.complete:  # the manifest last
            os.replace(partial, final)
        directory = os.open(self.out, os.O_RDONLY)
        try:
            os.fsync(directory)  # the renames themselves survive a crash
        finally:
            os.close(directory)

    def _partial(self, final: Path) -> Path:
        return final.with_name(f".{final.name}.{self.tag}.partial")


def _build(conn: Connection, resource_type: str, rows: store.Rows, systems: Systems) -> Iterator[dict[str, Any]]:
    ids = [row["id"] for row in rows]
    if resource_type == "Patient":  # a person's identifiers and care team are its live patients'
        member_of = store.members(conn, ids)
        patients = sorted(member_of)
        found = store.entity_identifiers(conn, "patient", patients)
        medics, organizations = store.care_links(conn, patients)
        ids_of: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        medics_of: dict[str, set[str]] = defaultdict(set)
        organizations_of: dict[str, set[str]] = defaultdict(set)
        for patient_id, person in member_of.items():
            ids_of[person] += found.get(patient_id, ())
            medics_of[person].update(medics.get(patient_id, ()))
            organizations_of[person].update(organizations.get(patient_id, ()))
        for row in rows:
            person = row["id"]
            identifiers = resources.identifiers(sorted(ids_of[person]), systems)
            yield resources.patient(row, identifiers, sorted(medics_of[person]), sorted(organizations_of[person]))
        return
    found = store.entity_identifiers(conn, store.LISTINGS[resource_type].entity_type, ids)
    for row in rows:
        identifiers = resources.identifiers(found.get(row["id"], ()), systems)
        if resource_type == "Practitioner":
            yield resources.practitioner(row, identifiers, systems)
        elif resource_type == "Organization":
            yield resources.organization(row, identifiers)
        else:
            yield resources.observation(row, row["person_id"], identifiers)


def _outcome(resource: str, problems: list[str]) -> dict[str, Any]:
    issues = [{"severity": "error", "code": "invalid", "diagnostics": f"{resource}: {p}"} for p in problems]
    return {"resourceType": "OperationOutcome", "issue": issues}


def _request_url(request: ExportRequest, since: dt.datetime | None) -> str:
    """The Bulk Data kick-off request this export answers, as a relative URL."""
    query = {"_type": ",".join(request.types), **({"_since": since.isoformat()} if since else {})}
    return "$export?" + urlencode(query, safe=",:")
