"""Helpers for the end-to-end tests: a config for the sandbox, running streams, reading tables back."""

from __future__ import annotations

import datetime as dt
import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Engine, create_engine, func, select, text

from connectors.client import RetryPolicy
from mappings.context import MappingContext
from pipeline.config import Config, parse
from pipeline.kinds import StreamSpec
from pipeline.storage import load
from pipeline.storage.db import migrate, open_engine
from pipeline.sync.prepare import prepare_page
from pipeline.sync.rows import PageCounts, map_page
from pipeline.sync.runner import RunOptions, RunResult, run_sources
from sandbox.prescrypto import DEFAULT_TOKEN


def write_page(
    conn: Any,
    source: str,
    spec: StreamSpec,
    records: Any,
    ctx: MappingContext,
    now: dt.datetime,
    run_id: int | None,
) -> PageCounts:
    """One page of raw records through every step at once, in the caller's transaction (prepare, the stored
    hashes, map, load), as the runner runs them apart; bad records go to quarantine. The caller commits."""
    page = prepare_page(records, spec, ctx)
    stored = load.stored_hashes(conn, source, spec.stream.name, list(page.good))
    rows, counts = map_page(page, stored, spec, ctx, source, now, run_id)
    load.write(conn, rows)
    return counts


@dataclass(frozen=True)
class Ran:
    """What a command gave: its exit status and what it printed, as ``subprocess.run`` would return them."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """Both streams, for what may be on either."""
        return self.stdout + self.stderr


def cli(*args: str, env: dict[str, str] | None = None) -> Ran:
    """``patientsync ARGS`` in this process (Typer's runner): a subprocess proves nothing more for a command's
    output and exit status, and costs a second of imports. An exception no command caught is a traceback on
    stderr and exit status 1, as in a process of its own. Logs stay at WARNING unless ``args`` say otherwise."""
    from typer.testing import CliRunner

    from pipeline.app.cli import app

    if "--log-level" not in args and "--version" not in args:
        args = ("--log-level", "WARNING", *args)
    # A command configures logging for its process: here, for this command only.
    structlog_config, root = structlog.get_config(), logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(app, list(args), env=env)
    finally:
        structlog.configure(**structlog_config)
        root.handlers = handlers
        root.setLevel(level)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return Ran(result.exit_code, result.stdout, stderr)


FAST_RETRY = RetryPolicy(attempts=5, initial_wait=0.01, max_wait=2.0, max_elapsed=20.0)
TODAY = dt.date(2026, 11, 21)


def prescrypto_source(sandbox: Any, **overrides: Any) -> dict[str, Any]:
    """A Prescrypto source of the sandbox. Its pages are requested one at a time (``concurrency`` 1), so that
    a test can stage a fault on the n-th request; tests of requesting pages ahead say otherwise."""
    return {
        "kind": "prescrypto",
        "base_url": sandbox.url("/prescrypto"),
        "token": DEFAULT_TOKEN,
        "page_size": 50,
        "concurrency": 1,
        **overrides,
    }


def make_config(db_url: str, sources: dict[str, dict[str, Any]]) -> Config:
    return parse({"database": {"url": db_url}, "sources": sources}, {})


def config_yaml(db_url: str, sources: dict[str, dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump({"database": {"url": db_url}, "sources": sources})


def engine_for(config: Config) -> Engine:
    engine = open_engine(config.database.url)
    migrate(engine)
    return engine


def run(config: Config, engine: Engine, mode: str, **options: Any) -> list[RunResult]:
    """A run as the tests drive it: fast retries, a fixed today, and (unless a test says otherwise) a
    transaction per page, so that a test can act between two pages, mapped in this process."""
    opts = RunOptions(**{"retry": FAST_RETRY, "today": TODAY, "commit_records": 1, "mapping_workers": 0, **options})
    return run_sources(config, engine, mode, options=opts)


def by_stream(results: list[RunResult]) -> dict[str, RunResult]:
    return {f"{r.source}/{r.stream}": r for r in results}


def count(engine: Engine, table: str, where: str = "1=1", **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}"), params).scalar() or 0)


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the canonical and bookkeeping tables that a no-op sync must leave alone."""
    tables = (
        "patient",
        "medic",
        "organization",
        "observation",
        "patient_medic",
        "patient_organization",
        "crosswalk",
        "source_record",
        "quarantine",
    )
    with engine.connect() as conn:
        return {t: sorted(tuple(map(str, row)) for row in conn.execute(text(f"SELECT * FROM {t}"))) for t in tables}


def max_updated(engine: Engine, table: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(func.max(table.c.updated_at))).scalar()


def source_patients(sandbox: Any) -> list[dict[str, Any]]:
    """The sandbox's patients as the vendor API lists them (the ground truth)."""
    return _listed(sandbox, "/prescrypto/api/v2/patient/", 100_000)


def source_medics(sandbox: Any) -> list[dict[str, Any]]:
    medics: list[dict[str, Any]] = []
    while batch := _listed(sandbox, "/prescrypto/api/v2/medics/", 100, len(medics)):
        medics.extend(batch)
    return medics


def _listed(sandbox: Any, path: str, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    response = sandbox.client.get(
        path, params={"limit": limit, "offset": offset}, headers={"Authorization": f"Token {DEFAULT_TOKEN}"}
    )
    response.raise_for_status()
    body = response.json()
    return body["results"] if isinstance(body, dict) else body


def patient_row(engine: Engine, source: str, uid: str) -> dict[str, Any]:
    """The canonical patient a Prescrypto uid landed on, found through the crosswalk as an analyst would."""
    query = text(
        "SELECT p.* FROM crosswalk c JOIN patient p ON p.id = c.entity_id "
        "WHERE c.source = :source AND c.entity_type = 'patient' AND c.id_type = 'uid' AND c.id_value = :uid"
    )
    with engine.connect() as conn:
        return dict(conn.execute(query, {"source": source, "uid": uid}).mappings().one())


def crosswalk_ids(engine: Engine, entity_id: str) -> dict[str, str]:
    query = text("SELECT id_type, id_value FROM crosswalk WHERE entity_id = :id")
    with engine.connect() as conn:
        return {id_type: value for id_type, value in conn.execute(query, {"id": entity_id})}


@contextmanager
def server_objects(server_url: str, create: list[str], drop: list[str]) -> Iterator[None]:
    """Runs the ``create`` statements on a PostgreSQL server, and the ``drop`` ones after the block however it
    ends (a database or a role of a test's own)."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for statement in create:
            conn.execute(text(statement))
    try:
        yield
    finally:
        with admin.connect() as conn:
            for statement in drop:
                conn.execute(text(statement))
        admin.dispose()


def expire_leases(engine: Engine) -> None:
    """As if every lease holder had died long ago: its leases have lapsed."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE sync_lease SET expires_at = :past"), {"past": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)})


# --- the other three kinds ------------------------------------------------------------------------------

SSN_KEY = "test-ssn-hash-key-0123456789"
PROFILES_AUTH = {"Authorization": "Token sandbox-profiles"}
GAUGES_AUTH = {"X-User-Token": "sandbox-gauges"}
PARTICLE_AUTH = {"Authorization": "sandbox-particle"}


def profiles_source(sandbox: Any, **overrides: Any) -> dict[str, Any]:
    return {"kind": "profiles", "base_url": sandbox.url("/profiles"), "token": "sandbox-profiles", **overrides}


def gauges_source(sandbox: Any, **overrides: Any) -> dict[str, Any]:
    return {
        "kind": "gauges",
        "base_url": sandbox.url("/gauges"),
        "token": "sandbox-gauges",
        "page_size": 50,
        "concurrency": 4,
        **overrides,
    }


def particle_source(sandbox: Any, **overrides: Any) -> dict[str, Any]:
    return {
        "kind": "particle",
        "base_url": sandbox.url("/particle"),
        "token": "sandbox-particle",
        "ssn_hash_key": SSN_KEY,
        "concurrency": 4,
        **overrides,
    }


def every_source(sandbox: Any) -> dict[str, dict[str, Any]]:
    """One source of each kind, named as the tests refer to them."""
    return {
        "rx": prescrypto_source(sandbox),
        "pf": profiles_source(sandbox),
        "ga": gauges_source(sandbox),
        "pa": particle_source(sandbox),
    }


def _get(sandbox: Any, path: str, headers: dict[str, str], **params: Any) -> Any:
    response = sandbox.client.get(path, params=params, headers=headers)
    response.raise_for_status()
    return response.json()


def profiles_truth(sandbox: Any) -> list[dict[str, Any]]:
    """Every profiles patient: a bare list, or the envelope's pages when that switch is on."""
    body = _get(sandbox, "/profiles/patients/patients/", PROFILES_AUTH)
    found: list[dict[str, Any]] = []
    while isinstance(body, dict):
        found.extend(body["results"])
        if not body["next"]:
            return found
        response = sandbox.client.get(body["next"], headers=PROFILES_AUTH)
        response.raise_for_status()
        body = response.json()
    return body


def gauges_truth(sandbox: Any) -> tuple[list[dict[str, Any]], dict[int, list[dict[str, Any]]]]:
    """The gauges API's patients, and each one's readings, read the way a client would."""
    patients: list[dict[str, Any]] = []
    page = 1
    while batch := _get(sandbox, "/gauges/v1/patients", GAUGES_AUTH, page=page, page_size=100):
        patients.extend(batch)
        page += 1
    readings = {p["id"]: _get(sandbox, f"/gauges/v1/patients/{p['id']}/gauges", GAUGES_AUTH) for p in patients}
    return patients, readings


def particle_truth(sandbox: Any) -> dict[str, dict[str, Any]]:
    """Every Particle patient_id and its record."""
    ids: list[str] = []
    token = None
    while True:
        body = _get(
            sandbox, "/particle/api/v1/patients", PARTICLE_AUTH, **({"continuation_token": token} if token else {})
        )
        ids.extend(body["patients"])
        token = body.get("continuation_token")
        if not token:
            return {i: _get(sandbox, f"/particle/api/v1/patients/{i}", PARTICLE_AUTH) for i in ids}


def rows(engine: Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(text(sql), params).mappings()]


def swept(sandbox: Any, db_url: str, sources: dict[str, dict[str, Any]], **data: int) -> tuple[Config, Engine]:
    """The sandbox reset to ``data`` (patients, medics, seed) and swept once by ``sources``: every stream ok."""
    sandbox.reset(**data)
    sandbox.post("/_sandbox/prescrypto/switches", {"patients_envelope": False})
    config = make_config(db_url, sources)
    engine = engine_for(config)
    results = run(config, engine, "sweep")
    assert all(r.ok for r in results), [(r.source, r.stream, r.error) for r in results]
    return config, engine


def person_of(engine: Engine, source: str, id_value: str, id_type: str | None = None) -> str:
    """The person of the one patient that ``source`` knows by ``id_value`` (of ``id_type``, if given)."""
    found = rows(
        engine,
        "SELECT p.person_id FROM patient p JOIN crosswalk c ON c.entity_id = p.id "
        "WHERE c.source = :s AND c.entity_type = 'patient' AND c.id_value = :v"
        + (" AND c.id_type = :t" if id_type else ""),
        s=source,
        v=id_value,
        **({"t": id_type} if id_type else {}),
    )
    assert len(found) == 1
    return str(found[0]["person_id"])
