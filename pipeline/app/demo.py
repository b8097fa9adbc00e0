"""``patientsync demo``: serve the sandbox, sweep it into a database of its own, show what landed.

The demo's sources are the configured ones renamed ``demo-<name>`` and pointed at the sandbox. Its database is
``DEMO_DATABASE`` unless the command is given another: demo rows never mix with a real database's.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from pipeline.config import Config
from pipeline.kinds import KINDS
from pipeline.kinds.base import SANDBOX_SSN_KEY
from pipeline.storage import summary
from pipeline.storage.run_values import Mode
from pipeline.sync.runner import RunOptions, RunResult, run_sources
from sandbox import tokens
from sandbox.server import running_sandbox

DEMO_DATABASE = "sqlite:///patientsync-demo.db"


def demo_config(config: Config, sandbox_url: str) -> Config:
    """The configuration with each source renamed ``demo-<name>`` and pointed at the sandbox: a real source's
    records, cursor and deletions in the same database are never touched by a demo."""
    sources = {
        f"demo-{name}": source.model_copy(
            update={
                "base_url": f"{sandbox_url}/{source.kind}",
                "token": SecretStr(tokens.BY_KIND[source.kind]),
                # The sandbox's people are synthetic: its published key is good enough for them.
                **({"ssn_hash_key": SecretStr(SANDBOX_SSN_KEY)} if KINDS[source.kind].hashes_ssns else {}),
            }
        )
        for name, source in config.sources.items()
    }
    return config.model_copy(update={"sources": sources})


def run_demo(
    config: Config, engine: Engine, patients: int, options: RunOptions, noise: bool = True
) -> tuple[list[RunResult], Callable[[Console], None]]:
    with running_sandbox(patients=patients) as sandbox:
        if noise:  # each API's copy of a person as real registries get it wrong, and look-alikes (sandbox.noise)
            sandbox.reset(noise=True)
        results = run_sources(demo_config(config, sandbox.url()), engine, Mode.sweep, options=options)
    return results, lambda console: _summary(engine, console)


def _summary(engine: Engine, console: Console) -> None:
    counts = Table(title="rows per table")
    counts.add_column("table")
    counts.add_column("rows", justify="right")
    with engine.connect() as conn:
        for name, n in summary.row_counts(conn):
            counts.add_row(name, str(n))
        console.print(counts)
        patients, persons, review = summary.people(conn)
        console.print(f"{patients} live patients resolve to {persons} persons (patientsync person ID shows one)")
        console.print(f"{review} possible matches wait for review (patientsync review)")
        ids = Table(title="source identifiers in the crosswalk")
        for column in ("source", "entity_type", "id_type", "rows"):
            ids.add_column(column, justify="right" if column == "rows" else "left")
        for source, entity_type, id_type, n in summary.identifier_kinds(conn):
            ids.add_row(source, entity_type, id_type, str(n))
        console.print(ids)
        for table, columns in (
            ("patient", ("given_name", "family_name", "birth_date", "sex", "phone", "curp", "city")),
            ("medic", ("full_name", "sex", "license_number", "specialty", "organization_id")),
            ("observation", ("patient_id", "code", "value", "scale_min", "scale_max", "recorded_at")),
        ):
            sample = Table(title=f"a few {table} rows")
            for column in columns:
                sample.add_column(column)
            for row in summary.latest(conn, table, columns):
                sample.add_row(*("" if v is None else str(v) for v in row))
            console.print(sample)
