"""What every command shares: the consoles, failing with a message, the configuration and the database."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from pipeline.config import Config

# Piped output is read by people with wide terminals and by grep: do not fold tables to 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=200)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=200)


@dataclass
class Globals:
    config_path: Path | None
    log_level: str


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]patientsync:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def load_config(ctx: typer.Context) -> Config:
    from canonical.errors import ConfigError
    from pipeline import config as config_file
    from pipeline.app import logs

    try:
        config = config_file.load(ctx.obj.config_path)
    except ConfigError as exc:
        fail(f"configuration: {exc}", 2)
    logs.register_secrets(config_file.secrets(config))
    return config


def open_database(config: Config, url: str | None = None) -> Engine:
    from sqlalchemy.exc import DatabaseError

    from pipeline.storage.db import migrate, open_engine
    from pipeline.sync.messages import database_reason

    # hide_parameters: a failing statement's message must not carry patient data into a log.
    engine = open_engine(url or config.database.url, hide_parameters=True)
    try:
        migrate(engine)
    except DatabaseError as exc:  # unreachable, locked, or a file that is not a database
        fail(f"database {engine.url.render_as_string(hide_password=True)}: cannot open it: {database_reason(exc)}", 2)
    return engine


def check_sources(config: Config, names: list[str] | None) -> None:
    unknown = [name for name in names or [] if name not in config.sources]
    if unknown:
        fail(f"--source {unknown[0]!r}: no such source (configured: {', '.join(config.sources)})", 2)


SourceOption = Annotated[
    list[str] | None,
    typer.Option("--source", "-s", metavar="NAME", help="Only this source (repeatable).", show_default=False),
]


def open_unchanged(config: Config, scratch: Path) -> Engine:
    """The configured database for a dry run, opened without creating or migrating anything: a database that
    does not exist yet or was never set up is compared as an empty one (a fresh file in ``scratch``), and one
    of another schema revision is refused (exit 2)."""
    import sqlite3

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DatabaseError

    from pipeline.storage.db import HEAD, open_engine, sqlite_revision, stored_revision
    from pipeline.sync.messages import database_reason

    url = config.database.url
    parsed = make_url(url)
    revision = None
    if not missing_sqlite(url):
        shown = parsed.render_as_string(hide_password=True)
        engine = None if parsed.get_backend_name() == "sqlite" else open_engine(url, hide_parameters=True)
        try:
            revision = stored_revision(engine) if engine is not None else sqlite_revision(str(parsed.database))
        except (DatabaseError, sqlite3.Error) as exc:
            reason = database_reason(exc) if isinstance(exc, DatabaseError) else str(exc)
            fail(f"database {shown}: cannot open it: {reason}", 2)
        if revision == HEAD:
            return engine or open_engine(url, hide_parameters=True)
        if engine is not None:
            engine.dispose()
        if revision is not None:
            fail(
                f"database {shown}: its schema is revision {revision}, this version's is {HEAD}; a dry run does "
                "not upgrade it (any other command does)",
                2,
            )
    err.print("no database yet: the dry run compares with an empty one, and creates none", highlight=False)
    return open_database(config, f"sqlite:///{scratch / 'empty.db'}")


def missing_sqlite(url: str) -> bool:
    """Whether ``url`` names a SQLite file that is not there (opening it would create it)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    path = parsed.database
    return parsed.get_backend_name() == "sqlite" and bool(path) and path != ":memory:" and not Path(str(path)).exists()


def existing_sqlite(url: str) -> None:
    """A command that only reads refuses a SQLite file that is not there, instead of creating an empty one."""
    from sqlalchemy.engine import make_url

    if missing_sqlite(url):
        shown = make_url(url).render_as_string(hide_password=True)
        fail(f"database {shown}: no such file (run sync or demo first)", 2)
