"""Database URLs, parsed and rendered exactly as SQLAlchemy's ``make_url`` does, without importing SQLAlchemy.

The configuration checks its URL and ``status`` opens the database before anything else runs, and importing
SQLAlchemy alone takes longer than ``status`` may (benchmarks.startup). tests/test_database_urls.py holds this
parser equal to SQLAlchemy's on a table of URLs and on generated ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, quote, quote_plus, unquote

# SQLAlchemy 2's own pattern (sqlalchemy.engine.url._parse_url).
_URL = re.compile(
    r"""
    (?P<drivername>[\w\+]+)://
    (?:
        (?P<username>[^:/]*)
        (?::(?P<password>[^@]*))?
    @)?
    (?:
        (?:
            \[(?P<ipv6host>[^/\?]+)\] |
            (?P<ipv4host>[^/:\?]+)
        )?
        (?::(?P<port>[^/\?]*))?
    )?
    (?:/(?P<database>[^\?]*))?
    (?:\?(?P<query>.*))?
    """,
    re.X,
)


# libpq parameters that are passwords: hidden wherever the URL is shown, beyond what SQLAlchemy hides.
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


@dataclass(frozen=True)
class DatabaseUrl:
    drivername: str  # "sqlite", "postgresql+psycopg", ...
    username: str | None
    password: str | None
    host: str | None
    port: int | None
    database: str | None
    query: tuple[tuple[str, str], ...]  # sorted by key, as SQLAlchemy renders them

    @property
    def backend(self) -> str:
        return self.drivername.split("+", 1)[0]

    def with_driver(self, drivername: str) -> DatabaseUrl:
        return replace(self, drivername=drivername)

    def render(self, hide_password: bool = True) -> str:
        """The URL as text (SQLAlchemy's ``render_as_string``); unless asked, its passwords as ``***``, including
        one given as a query parameter, which SQLAlchemy would show."""
        text = self.drivername + "://"
        if self.username is not None:
            text += quote(self.username, safe=" +")
            if self.password is not None:
                text += ":" + ("***" if hide_password else quote(self.password, safe=" +"))
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            text += f":{self.port}"
        if self.database is not None:
            text += "/" + quote(self.database, safe=" +/")
        if self.query:
            hidden = _SECRET_PARAMETERS if hide_password else frozenset()
            query = [(key, "***" if key in hidden else value) for key, value in self.query]
            text += "?" + "&".join(f"{quote_plus(key)}={quote_plus(value)}" for key, value in query)
        return text

    def secrets(self) -> list[str]:
        """The passwords the URL holds, in its user part or as a libpq parameter (``?password=...``)."""
        given = [self.password, *(value for key, value in self.query if key in _SECRET_PARAMETERS)]
        return [secret for secret in given if secret]


def parse(url: str) -> DatabaseUrl:
    """``url`` parsed; ``ValueError`` (without the URL, which may hold a password) when it is not a URL."""
    found = _URL.match(url)
    if found is None:
        raise ValueError("not a database URL")
    parts = found.groupdict()
    port = parts["port"]
    try:
        number = int(port) if port is not None else None  # as SQLAlchemy reads it: " 5432" is 5432, "h:/" no port
    except ValueError:
        raise ValueError("the port is not a number") from None
    # by key only: a repeated key keeps its values in their order, as SQLAlchemy renders them
    query = sorted(parse_qsl(parts["query"]), key=lambda pair: pair[0]) if parts["query"] is not None else []
    return DatabaseUrl(
        drivername=parts["drivername"],
        username=_unquoted(parts["username"]),
        password=_unquoted(parts["password"]),
        host=parts["ipv4host"] or parts["ipv6host"],
        port=number,
        database=_unquoted(parts["database"]),
        query=tuple(query),
    )


def _unquoted(value: str | None) -> str | None:
    return None if value is None else unquote(value)
