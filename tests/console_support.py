"""The demo's database (SQLite and PostgreSQL, made once a session and copied for each test), the console served
over real HTTP on a free port, and what the tests read back. Every module that uses it is in the xdist group
``demo``, so one worker builds it once."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from pipeline import config as config_file
from pipeline.app.demo import demo_config, run_demo
from pipeline.app.web.serve import ConsoleServer
from pipeline.config import Config
from pipeline.storage.db import migrate, open_engine
from pipeline.sync.runner import RunOptions
from tests.support import server_objects

ROOT = Path(__file__).resolve().parent.parent
DEMO_PEOPLE = 250  # the demo's default: 4 possible matches wait for review
OPERATOR = "Ana Steward"
TOKEN = "console-token-for-tests-0123456789"
HOSTILE = '<script>alert("given")</script><img src=x onerror=alert(1)>'  # a given name a source could send


def demo_settings(url: str) -> Config:
    """The repository's configuration as the demo runs it (sources ``demo-<name>``), on this database."""
    config = demo_config(config_file.load(ROOT / "config.yaml", environ={}), "http://127.0.0.1")
    return config.model_copy(update={"database": config.database.model_copy(update={"url": url})})


def unthrottled_config() -> Config:
    """The repository's configuration without its request-rate limits: the same records land, and the 300 detail
    GETs of Particle's 50 a second no longer make every build of the demo's database wait six seconds."""
    config = config_file.load(ROOT / "config.yaml", environ={})
    sources = {name: source.model_copy(update={"rate_limit": None}) for name, source in config.sources.items()}
    return config.model_copy(update={"sources": sources})


def _fill(url: str) -> None:
    engine = open_engine(url)
    migrate(engine)
    results, _ = run_demo(unthrottled_config(), engine, DEMO_PEOPLE, RunOptions())
    assert all(r.ok for r in results), [(r.source, r.stream, r.error) for r in results]
    engine.dispose()


@pytest.fixture(scope="session")
def demo_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console-demo") / "demo.db"
    _fill(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def demo_pg(pg_server: str) -> Iterator[str]:
    """A database the demo filled, the template of each test's own copy."""
    name = f"patientsync_console_{uuid.uuid4().hex[:12]}"
    with server_objects(pg_server, [f'CREATE DATABASE "{name}"'], [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)']):
        _fill(make_url(pg_server).set(database=name).render_as_string(hide_password=False))
        yield name


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def demo_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A copy of the demo's database for one test: it may decide what it likes."""
    if request.param == "sqlite":
        copy = tmp_path / "demo.db"
        shutil.copy(request.getfixturevalue("demo_sqlite"), copy)
        yield f"sqlite:///{copy}"
        return
    server, template = request.getfixturevalue("pg_server"), request.getfixturevalue("demo_pg")
    name = f"patientsync_test_{uuid.uuid4().hex[:12]}"
    create = [f'CREATE DATABASE "{name}" TEMPLATE "{template}"']
    with server_objects(server, create, [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)']):
        yield make_url(server).set(database=name).render_as_string(hide_password=False)


@dataclass
class Served:
    base: str
    config: Config
    engine: Engine

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base, follow_redirects=False, timeout=30, **kwargs)


@pytest.fixture
def served(demo_url: str) -> Iterator[Served]:
    """The console over the copy, on 127.0.0.1 and a free port, without a token: the local operator decides."""
    yield from _serve(demo_settings(demo_url))


@pytest.fixture
def served_with_token(demo_url: str) -> Iterator[Served]:
    config = demo_settings(demo_url)
    yield from _serve(
        config.model_copy(update={"console": config.console.model_copy(update={"token": SecretStr(TOKEN)})})
    )


def _serve(config: Config) -> Iterator[Served]:
    engine = open_engine(config.database.url)
    with ConsoleServer(config, engine, "127.0.0.1", 0, OPERATOR) as server:
        yield Served(f"http://127.0.0.1:{server.port}", config, engine)
    engine.dispose()


def open_reviews(engine: Engine) -> list[dict[str, Any]]:
    """The open possible matches, highest score first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT l.id, l.patient_id, l.person_id, l.score FROM identity_link l "
                "JOIN patient p ON p.id = l.patient_id "
                "WHERE l.status = 'possible_match' AND p.deleted_at IS NULL ORDER BY l.score DESC, l.id"
            )
        )
        return [dict(row._mapping) for row in rows]


def identity_state(engine: Engine) -> tuple[Any, ...]:
    """Everything a decision could change: links, history, persons and patients' persons."""
    with engine.connect() as conn:
        return tuple(
            tuple(tuple(row) for row in conn.execute(text(query)))
            for query in (
                "SELECT id, patient_id, person_id, status, origin FROM identity_link ORDER BY id",
                "SELECT count(*) FROM identity_history",
                "SELECT id, person_id FROM patient ORDER BY id",
                "SELECT count(*) FROM person WHERE deleted_at IS NULL",
            )
        )


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None, "the page carries no CSRF token"
    return found.group(1)
