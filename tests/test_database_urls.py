"""``pipeline.storage.urls`` parses and renders database URLs as SQLAlchemy's ``make_url`` does: the
configuration and ``status`` read them without importing SQLAlchemy, and every other command hands the same
text to SQLAlchemy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pipeline.storage import urls

URLS = [
    "sqlite:///patientsync.db",
    "sqlite:////var/lib/patientsync/db.sqlite",
    "sqlite://",
    "sqlite:///:memory:",
    "sqlite:///file:data.db?mode=ro&uri=true",
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://user:p%40ss%2Fw0rd@db.example.org/patients?sslmode=require&application_name=ps",
    "postgresql+psycopg://user:pa ss@[::1]:5433/db",
    "postgresql://u@h/db?b=2&a=1&b=1",
    "postgresql://:secret@h/db",
    "postgresql://h",
    "postgresql://u@h:+5432/db",
    "postgresql://u@h: 5432/db",
    "mysql+pymysql://root@localhost/test",
]


PARTS = ("drivername", "username", "password", "host", "port", "database")


def _sqlalchemy(url: str) -> tuple[object, ...]:
    parsed = make_url(url)
    renders = (parsed.render_as_string(hide_password=True), parsed.render_as_string(hide_password=False))
    return (*(getattr(parsed, part) for part in PARTS), parsed.get_backend_name(), *renders)


def _ours(url: str) -> tuple[object, ...]:
    parsed = urls.parse(url)
    renders = (parsed.render(hide_password=True), parsed.render(hide_password=False))
    return (*(getattr(parsed, part) for part in PARTS), parsed.backend, *renders)


@pytest.mark.parametrize("url", URLS)
def test_a_url_reads_and_renders_as_sqlalchemy_reads_it(url: str) -> None:
    assert _ours(url) == _sqlalchemy(url)


_PART = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)


@given(
    scheme=st.sampled_from(["sqlite", "postgresql", "postgresql+psycopg"]),
    user=_PART,
    password=_PART,
    host=st.from_regex(r"[a-z0-9.-]{0,12}", fullmatch=True),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    database=_PART,
)
def test_generated_urls_read_as_sqlalchemy_reads_them(
    scheme: str, user: str, password: str, host: str, port: int | None, database: str
) -> None:
    from urllib.parse import quote

    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" if user else host
    url = f"{scheme}://{netloc}{'' if port is None else f':{port}'}/{quote(database, safe='/')}"
    assert _ours(url) == _sqlalchemy(url)


@pytest.mark.parametrize(
    "url", ["postgres ql://u:Sup3rSecret@h/db", "not a url", "postgresql://u:x@h:port/db", "postgresql://u:x@h:/db"]
)
def test_what_is_not_a_url_is_refused_without_being_quoted(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        urls.parse(url)
    assert "Sup3rSecret" not in str(caught.value) and "port/db" not in str(caught.value)
    with pytest.raises((ArgumentError, ValueError)):
        make_url(url)  # SQLAlchemy refuses them too


def test_a_password_given_as_a_parameter_is_hidden_where_sqlalchemy_would_show_it() -> None:
    url = "postgresql+psycopg://ps@db.example.org/p?sslmode=require&password=Sup3rSecret&sslpassword=K3ySecret"
    parsed = urls.parse(url)
    assert "Secret" not in parsed.render() and "password=%2A%2A%2A" in parsed.render()
    assert parsed.render(hide_password=False) == make_url(url).render_as_string(hide_password=False)
    assert parsed.secrets() == ["Sup3rSecret", "K3ySecret"]
