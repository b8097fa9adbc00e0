"""``patientsync demo``: serve the sandbox, sweep it into a database of its own, show what landed.

The demo's sources are the configured ones renamed ``demo-<name>`` and pointed at the sandbox. Its database is
``DEMO_DATABASE`` unless the command is given another: demo rows never mix with a real database's.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, select
from sqlmodel import SQLModel

from pipeline.config import Config
from pipeline.kinds import KINDS
from pipeline.kinds.base import SANDBOX_SSN_KEY
from pipeline.storage.tables import (
    CANONICAL,
    Crosswalk,
    IdentityLink,
    Medic,
    Mode,
    Observation,
    Patient,
    PatientMedic,
    PatientOrganization,
    Person,
    Quarantine,
    SourceRecord,
    table_of,
)
from pipeline.sync.runner import RunOptions, RunResult, run_sources
from sandbox.server import running_sandbox

DEMO_DATABASE = "sqlite:///patientsync-demo.db"


def run_demo(
    config: Config, engine: Engine, patients: int, options: RunOptions, noise: bool = True
) -> tuple[list[RunResult], Callable[[Console], None]]:
    with running_sandbox(patients=patients) as sandbox:
        if noise:  # each API's copy of a person as real registries get it wrong, and look-alikes (sandbox.noise)
            sandbox.reset(noise=True)
        # Sandbox data lands under sources of its own: a real source's records, cursor and deletions in the
        # same database are never touched by a demo.
        sources = {
            f"demo-{name}": source.model_copy(
                update={
                    "base_url": sandbox.url(f"/{source.kind}"),
                    "token": SecretStr(KINDS[source.kind].sandbox_token),
                    # The sandbox's people are synthetic: its published key is good enough for them.
                    **({"ssn_hash_key": SecretStr(SANDBOX_SSN_KEY)} if KINDS[source.kind].hashes_ssns else {}),
                }
            )
            for name, source in config.sources.items()
        }
        results = run_sources(config.model_copy(update={"sources": sources}), engine, Mode.sweep, options=options)
    return results, lambda console: _summary(engine, console)


def _summary(engine: Engine, console: Console) -> None:
    tables: list[type[SQLModel]] = [
        *CANONICAL.values(),
        PatientMedic,
        PatientOrganization,
        Crosswalk,
        SourceRecord,
        Quarantine,
        Person,
        IdentityLink,
    ]
    counts = Table(title="rows per table")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    with engine.connect() as conn:
        for model in tables:
            t = table_of(model)
            counts.add_row(t.name, str(conn.execute(select(func.count()).select_from(t)).scalar()))
        console.print(counts)
        p, person = table_of(Patient), table_of(Person)
        patients = conn.execute(select(func.count()).where(p.c.deleted_at.is_(None))).scalar()
        persons = conn.execute(select(func.count()).where(person.c.deleted_at.is_(None))).scalar()
        console.print(f"{patients} live patients resolve to {persons} persons (patientsync person ID shows one)")
        links = table_of(IdentityLink)
        review = conn.execute(select(func.count()).where(links.c.status == "possible_match")).scalar()
        console.print(f"{review} possible matches wait for review (patientsync review)")
        cw = table_of(Crosswalk)
        ids = Table(title="source identifiers in the crosswalk")
        for column in ("source", "entity_type", "id_type", "rows"):
            ids.add_column(column, justify="right" if column == "rows" else "left")
        keys = (cw.c.source, cw.c.entity_type, cw.c.id_type)
        for source, entity_type, id_type, rows in conn.execute(
            select(*keys, func.count()).group_by(*keys).order_by(*keys)
        ):
            ids.add_row(source, entity_type, id_type, str(rows))
        console.print(ids)
        for model, columns in (
            (Patient, ("given_name", "family_name", "birth_date", "sex", "phone", "curp", "city")),
            (Medic, ("full_name", "sex", "license_number", "specialty", "organization_id")),
            (Observation, ("patient_id", "code", "value", "scale_min", "scale_max", "recorded_at")),
        ):
            t = table_of(model)
            sample = Table(title=f"a few {t.name} rows")
            for column in columns:
                sample.add_column(column)
            query = select(*(t.c[c] for c in columns)).order_by(t.c.updated_at.desc(), t.c.id).limit(5)
            for row in conn.execute(query):
                sample.add_row(*("" if v is None else str(v) for v in row))
            console.print(sample)
