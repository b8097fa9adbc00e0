"""Shared fixtures: real databases (a SQLite file, a fresh PostgreSQL database) and the sandbox over HTTP."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support import server_objects

pytest.register_assert_rewrite("tests.console_support")

PG_URL = os.environ.get("PATIENTSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("PATIENTSYNC_REQUIRE_PG") == "1"


def _pg_unreachable_reason() -> str | None:
    try:
        with create_engine(PG_URL, connect_args={"connect_timeout": 3}).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "not reachable"
        return f"PostgreSQL at {make_url(PG_URL).render_as_string(hide_password=True)} is not reachable: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_server() -> str:
    reason = _pg_unreachable_reason()
    if reason is not None:
        if REQUIRE_PG:
            pytest.fail(f"PATIENTSYNC_REQUIRE_PG=1 but {reason}")
        pytest.skip(reason)
    return PG_URL


def _database(server: str, name: str) -> str:
    return make_url(server).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_migrated(pg_server: str) -> Iterator[str]:
    """A database migrated to the newest revision once a session (a worker), the template of every test's own:
    copying it costs a third of running the eight migrations again for each test."""
    from pipeline.storage.db import migrate, open_engine

    name = f"patientsync_template_{uuid.uuid4().hex[:12]}"
    with server_objects(pg_server, [f'CREATE DATABASE "{name}"'], [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)']):
        engine = open_engine(_database(pg_server, name))
        migrate(engine)
        engine.dispose()  # a template must have no connection while it is copied
        yield name


@pytest.fixture
def pg_url(pg_server: str, pg_migrated: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of its own for one test, dropped afterwards: migrated to the newest revision, or empty for a
    test marked ``empty_database`` (one that migrates it itself, from an older revision or through a command)."""
    name = f"patientsync_test_{uuid.uuid4().hex[:12]}"
    template = "" if request.node.get_closest_marker("empty_database") else f' TEMPLATE "{pg_migrated}"'
    create = [f'CREATE DATABASE "{name}"{template}']
    with server_objects(pg_server, create, [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)']):
        yield _database(pg_server, name)


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/patientsync.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs twice: on a SQLite file and on a fresh PostgreSQL database."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Any]:
    """One sandbox process for the session, over real HTTP on a free port."""
    from sandbox.server import running_sandbox

    with running_sandbox(patients=250, medics=40) as handle:
        yield handle


@pytest.fixture
def sandbox(sandbox_server: Any) -> Any:
    """The session's sandbox, reset to 230 patients and 40 medics with no faults."""
    sandbox_server.reset(patients=230, medics=40, seed=7)
    sandbox_server.post("/_sandbox/prescrypto/switches", {"patients_envelope": False})
    return sandbox_server
