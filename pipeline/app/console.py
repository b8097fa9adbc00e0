"""What every command shares: the consoles, failing with a message, the configuration and the database."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from pipeline.config import Config
    from pipeline.storage.plain import Plain

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
        fail(f"database {shown_url(url or config.database.url)}: cannot open it: {database_reason(exc)}", 2)
    return engine


@contextmanager
def open_plain(config: Config) -> Iterator[Plain]:
    """The configured database through its driver alone (``pipeline.storage.plain``), for a command that only
    reads a few counts (status). A database that is not there yet or needs an upgrade is first set up through
    ``open_database``, as by any other command; a URL off the driver's fast path is read through the engine."""
    from pipeline.storage import plain, urls
    from pipeline.sync.messages import database_reason

    url = urls.parse(config.database.url)
    if not plain.fast_path(url):
        engine = open_database(config)
        try:
            with plain.borrow(engine) as db:
                yield db
        finally:
            engine.dispose()
        return
    try:
        with plain.connect(url) as db:
            if db.revision() != plain.HEAD:
                open_database(config).dispose()
            yield db
    except plain.driver_errors() as exc:  # unreachable, locked, or a file that is not a database
        fail(f"database {url.render()}: cannot open it: {database_reason(exc)}", 2)


def check_sources(config: Config, names: list[str] | None) -> None:
    unknown = [name for name in names or [] if name not in config.sources]
    if unknown:
        fail(f"--source {unknown[0]!r}: no such source (configured: {', '.join(config.sources)})", 2)


SourceOption = Annotated[
    list[str] | None,
    typer.Option("--source", "-s", metavar="NAME", help="Only this source (repeatable).", show_default=False),
]


def open_existing(config: Config, url: str | None = None) -> Engine:
    """``open_database`` for a command that only reads or steers what is stored: a SQLite file that is not
    there is refused, instead of created empty."""
    existing_sqlite(url or config.database.url)
    return open_database(config, url)


def open_unchanged(config: Config, scratch: Path) -> Engine:
    """The configured database for a dry run, opened without creating or migrating anything: a database that
    does not exist yet or was never set up is compared as an empty one (a fresh file in ``scratch``), and one
    of another schema revision is refused (exit 2)."""
    from pipeline.storage.db import open_engine
    from pipeline.storage.plain import HEAD

    url = config.database.url
    revision = None if missing_sqlite(url) else _revision(url)
    if revision == HEAD:
        return open_engine(url, hide_parameters=True)
    if revision is not None:
        fail(
            f"database {shown_url(url)}: its schema is revision {revision}, this version's is {HEAD}; a dry run does "
            "not upgrade it (any other command does)",
            2,
        )
    err.print("no database yet: the dry run compares with an empty one, and creates none", highlight=False)
    return open_database(config, f"sqlite:///{scratch / 'empty.db'}")


def _revision(url: str) -> str | None:
    """The stored schema revision, read without writing: a SQLite file through a read-only connection (the
    engine's connect settings would switch it to WAL)."""
    import sqlite3

    from sqlalchemy.exc import DatabaseError

    from pipeline.storage import urls
    from pipeline.storage.db import open_engine, sqlite_revision, stored_revision
    from pipeline.sync.messages import database_reason

    parsed = urls.parse(url)
    try:
        if parsed.backend == "sqlite":
            return sqlite_revision(str(parsed.database))
        engine = open_engine(url, hide_parameters=True)
        try:
            return stored_revision(engine)
        finally:
            engine.dispose()
    except sqlite3.Error as exc:
        fail(f"database {shown_url(url)}: cannot open it: {exc}", 2)
    except DatabaseError as exc:
        fail(f"database {shown_url(url)}: cannot open it: {database_reason(exc)}", 2)


def shown_url(url: str) -> str:
    from pipeline.storage import urls

    return urls.parse(url).render(hide_password=True)


def missing_sqlite(url: str) -> bool:
    """Whether ``url`` names a SQLite file that is not there (opening it would create it)."""
    from pipeline.storage import urls

    parsed = urls.parse(url)
    path = parsed.database
    return parsed.backend == "sqlite" and bool(path) and path != ":memory:" and not Path(str(path)).exists()


def existing_sqlite(url: str) -> None:
    """A command that only reads refuses a SQLite file that is not there, instead of creating an empty one."""
    if missing_sqlite(url):
        fail(f"database {shown_url(url)}: no such file (run sync or demo first)", 2)


def print_run_message(source: str, stream: str, status: str, message: str | None) -> None:
    """A run's error, or the warning a successful run left (parents refused), on stderr."""
    if not message:
        return
    from pipeline.storage.run_values import Status

    style = "yellow" if status == Status.succeeded else "red"
    prefix = f"{source}/{stream}:"
    text = message.removeprefix(prefix).lstrip()  # source errors already name the stream
    # escape: the text may come from a source's error body, and rich must not read it as markup
    err.print(f"[{style}]{escape(prefix)}[/] {escape(text)}", highlight=False, soft_wrap=True)
