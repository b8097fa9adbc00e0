"""Page writes on both databases: payloads that would break JSONB, and ids that stay stable."""

from __future__ import annotations

import datetime as dt
import functools

import pytest

from canonical.ids import canonical_id
from connectors import prescrypto as prescrypto_streams
from mappings.context import MappingContext
from pipeline.kinds import KINDS
from pipeline.sync.redaction import redact
from tests.support import count, engine_for, make_config, write_page

SPEC = KINDS["prescrypto"].streams["patients"]
CTX = MappingContext(today=dt.date(2026, 11, 21))


def patient(uid: str, **fields: object) -> dict:
    return {"id": 1, "uid": uid, "name": "Ana del Valle", "date_of_birth": "1990-01-02", "gender": "F", **fields}


def test_redact_hides_secrets_and_makes_payloads_storable():
    raw = {
        "token": "abc",
        "password": "p",
        "ssn": "123-45-6789",
        "note": "a\x00b",
        "score": float("nan"),
        "nested": [{"Token": "x", "n": float("inf")}],
        "empty_token": "",
        "name": "Ana",
        "odd": "\udc80!",
    }
    assert redact(raw).payload == {
        "token": "[redacted]",
        "password": "[redacted]",
        "ssn": "[redacted]",
        "note": "a\ufffdb",
        "score": "nan",
        "nested": [{"Token": "[redacted]", "n": "inf"}],
        "empty_token": "",
        "name": "Ana",
        "odd": "\ufffd!",
    }
    plain = {"uid": "u", "name": "José", "n": 1}
    assert redact(plain).payload is plain  # nothing to change: not even copied
    assert redact(plain).payload is plain  # its keys are now known to be plain
    assert redact({**plain, "Token": "t"}).payload["Token"] == "[redacted]"  # known plain keys do not hide a new secret


def test_odd_payloads_land_on_both_databases(db_url):
    engine = engine_for(make_config(db_url, {"x": {"kind": "prescrypto", "base_url": "http://h/", "token": "t"}}))
    records = [
        patient("u-1", campaign="a\x00b", extra=float("nan")),  # odd, but in fields no mapping reads: lands
        patient("u-2", location="Ciudad\x00 Oculta"),  # a NUL in a mapped field: quarantined, payload kept
        patient("u-3"),
        patient("u-4", campaign="half a pair \ud800"),  # an unpaired surrogate, as json.loads gives it: lands
        patient("bad\x00key"),  # a key no database can store: quarantined under its payload's hash
        [1, 2],
        "text",
    ]
    now = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    with engine.begin() as conn:
        counts = write_page(conn, "rx", SPEC, records, CTX, now, run_id=None)
    assert (counts.fetched, counts.inserted, counts.quarantined) == (7, 3, 4)
    assert count(engine, "patient") == 3
    assert count(engine, "quarantine", "reason = 'record: not a JSON object'") == 2
    assert count(engine, "quarantine", "reason = 'uid: contains a NUL or an unpaired surrogate'") == 1
    assert count(engine, "quarantine", "source_key = 'u-2' AND reason LIKE 'location: %'") == 1
    assert prescrypto_streams.PATIENTS.key == "uid"


def test_canonical_ids_are_stable_and_distinct_per_source_and_type():
    assert canonical_id("rx", "patient", "u-1") == canonical_id("rx", "patient", "u-1")
    assert (
        len(
            {
                canonical_id("rx", "patient", "1"),
                canonical_id("rx", "medic", "1"),
                canonical_id("other", "patient", "1"),
            }
        )
        == 3
    )


def test_identical_keyless_records_on_one_page_quarantine_once(db_url):
    engine = engine_for(make_config(db_url, {"x": {"kind": "prescrypto", "base_url": "http://h/", "token": "t"}}))
    twin = {"name": "Sin Uid", "date_of_birth": "1990-01-01"}
    now = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    with engine.begin() as conn:
        counts = write_page(conn, "rx", SPEC, [twin, dict(twin), patient("u-1")], CTX, now, run_id=None)
    assert (counts.inserted, counts.quarantined) == (1, 2)
    assert count(engine, "quarantine") == 1  # one row per distinct bad record


def test_stored_hashes_and_missing_records_read_through_the_driver(db_url, monkeypatch) -> None:
    """The lookups a run makes for every record read the driver's rows: soft-deleted or not, slice by slice
    (PostgreSQL: a server-side cursor), and a failure is SQLAlchemy's error, which hides the parameters."""
    from sqlalchemy import func, select
    from sqlalchemy.exc import DBAPIError

    from pipeline.storage import db, load
    from pipeline.storage.tables import SourceRecord, table_of

    engine = engine_for(make_config(db_url, {"x": {"kind": "prescrypto", "base_url": "http://h/", "token": "t"}}))
    now = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    uids = [f"u-{n}" for n in range(5)]
    with engine.begin() as conn:
        write_page(conn, "rx", SPEC, [patient(u, id=n + 1) for n, u in enumerate(uids)], CTX, now, run_id=None)
        ids, live = load.missing_records(conn, "rx", "patients", set())
        load.soft_delete(conn, "rx", "patients", "patient", {uids[4]: ids[uids[4]]})
    assert sorted(ids) == uids and live == 5 and len(set(ids.values())) == 5
    monkeypatch.setattr(db, "_SLICE", 2)
    with db.reading(engine).connect() as conn:  # no transaction yet: begun as execute begins one
        stored = load.stored_hashes(conn, "rx", "patients", [*uids, "never-stored"])
        assert sorted(stored) == uids
        assert [deleted for _, deleted in map(stored.get, uids)] == [False, False, False, False, True]
        assert all(len(digest) == 64 for digest, _ in stored.values())
        gone, live = load.missing_records(conn, "rx", "patients", {uids[0]})
        assert (gone, live) == ({u: ids[u] for u in uids[1:4]}, 4)
        t = table_of(SourceRecord)
        refused = select(t.c.source_key).where(t.c.source_key == "secret-value", func.no_such_function(t.c.source) == 1)
        with pytest.raises(DBAPIError) as raised:
            list(db.driver_rows(conn, refused))
        assert "no_such_function" in str(raised.value) and "secret-value" not in str(raised.value)


def test_a_stored_text_sqlite_cannot_decode_fails_the_lookup_quoting_no_key(sqlite_url) -> None:
    """SQLite's lookups come back packed in one text: a stored value that is not UTF-8 (written by another tool)
    must not make the error quote the group's other keys, as sqlite3's own decoding error would."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from pipeline.storage import db, load

    engine = engine_for(make_config(sqlite_url, {"x": {"kind": "prescrypto", "base_url": "http://h/", "token": "t"}}))
    now = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    uids = ["O'Brien-4471", "MRN-0099812", "u-3"]
    with engine.begin() as conn:
        write_page(conn, "rx", SPEC, [patient(u, id=n + 1) for n, u in enumerate(uids)], CTX, now, run_id=None)
        conn.execute(text("UPDATE source_record SET payload_hash = CAST(x'41ff42' AS TEXT) WHERE source_key = 'u-3'"))
    with db.reading(engine).connect() as conn, pytest.raises(DBAPIError) as raised:
        load.stored_hashes(conn, "rx", "patients", uids)
    said = str(raised.value)
    assert "not valid UTF-8" in said and not any(part in said for part in ("Brien", "4471", "0099812"))


@pytest.mark.postgres
def test_a_lookup_on_a_lost_postgres_connection_says_so_and_drops_it(pg_url) -> None:
    """The driver's error on a connection the server ended is raised as execute raises it: the connection is
    invalidated (the pool opens another), and the error is the server's, not a failed rollback's."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from pipeline.storage import load
    from pipeline.storage.db import open_engine, reading

    engine, killer = open_engine(pg_url, pool_size=1), open_engine(pg_url)
    with pytest.raises(OperationalError) as raised, reading(engine).connect() as conn:
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with killer.begin() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        load.stored_hashes(conn, "rx", "patients", ["u-1"])
    assert raised.value.connection_invalidated and "terminating connection" in str(raised.value)
    with reading(engine).connect() as conn:  # a new connection from the pool
        assert load.stored_hashes(conn, "rx", "patients", ["u-1"]) == {}
    engine.dispose()
    killer.dispose()


def test_sqlite_lookups_do_not_wait_for_the_writers_lock(tmp_path) -> None:
    """The prefetch thread's reads run beside a page transaction that holds SQLite's write lock (waiting for
    it would end in "database is locked" after the 30 s busy timeout)."""
    from sqlalchemy import text

    from pipeline.storage import lookups
    from pipeline.storage.db import migrate, open_engine

    engine = open_engine(f"sqlite:///{tmp_path}/lock.db")
    migrate(engine)
    with engine.begin() as writer:
        writer.execute(
            text("INSERT INTO sync_lease (source, stream, holder, expires_at) VALUES ('s', 't', 'h', '2030-01-01')")
        )
        assert lookups.stored_among(engine, "s", "patients", ["a"]) == set()
        assert list(lookups.live_keys(engine, "s", "patients", None, 10)) == []


def test_json_columns_take_what_orjson_refuses() -> None:
    import json

    from pipeline.storage.db import json_text

    for value in ({"a": "é", "b": [1, 2.5, None, True]}, {"big": 2**70}, {1: "key not a string"}):
        assert json.loads(json_text(value)) == json.loads(json.dumps(value))


def test_engines_write_json_columns_with_orjson(db_url: str) -> None:
    from pipeline.storage.db import json_text, open_engine

    engine = open_engine(db_url)
    assert engine.dialect._json_serializer is json_text  # type: ignore[attr-defined]
    engine.dispose()


def test_match_keys_travel_as_tuples_and_land_on_both_databases(db_url: str) -> None:
    """A commit's match keys cross from the mapping worker as tuples (half a dict row's memory); a few go through
    executemany, many through PostgreSQL's COPY (values holding what COPY's text format escapes among them), and
    all land as the keys they were."""
    import pytest

    from pipeline.storage.db import migrate, open_engine
    from pipeline.storage.load import KEY_COLUMNS, _insert_new, key_rows, stored_keys, write_keys
    from pipeline.storage.tables import MatchKey, table_of

    engine = open_engine(db_url)
    migrate(engine)
    few = {"p-few": [["names_dob", "ana|1990"], ["email", "a@x.org"]]}
    many = {f"p-{i:03}": [["names_dob", f"name{i}|1990"], ["phone", f"+5255{i:08}"]] for i in range(60)}
    odd = {f"q-{i:03}": [["names_dob", f"o\\{i}\t|\n1990\r"], ["email", ""]] for i in range(60)}
    with engine.begin() as conn:
        for keys in (few, many, odd):
            match_keys, patient_keys = key_rows(keys)
            assert all(type(row) is tuple and len(row) == len(KEY_COLUMNS) for row in match_keys)
            write_keys(conn, match_keys, patient_keys)
        rows = set(conn.exec_driver_sql("SELECT key_type, key_value, patient_id FROM match_key").all())
        assert stored_keys(conn, ["p-few"]) == {"p-few": few["p-few"]}
    assert rows == {(t, v, p) for keys in (few, many, odd) for p, listed in keys.items() for t, v in listed}
    with engine.begin() as conn, pytest.raises(ValueError, match="in the table's order"):
        _insert_new(conn, table_of(MatchKey), [("p-x", "email", "b@x.org")], ("patient_id", "key_type", "key_value"))
    engine.dispose()


def test_a_page_reaches_the_database_in_each_tables_key_order(tmp_path) -> None:
    """Canonical ids and match keys are random: a page's rows are handed to the driver sorted by each table's
    primary key, so that a commit walks each B-tree once instead of landing all over it."""
    from sqlalchemy import event

    from pipeline.storage.db import migrate, open_engine

    engine = open_engine(f"sqlite:///{tmp_path}/order.db")
    migrate(engine)
    tables = ("match_key", "patient_keys", "patient", "source_record", "crosswalk")
    bound: dict[str, tuple[list[str], list[tuple]]] = {}

    @event.listens_for(engine, "before_cursor_execute")
    def capture(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        words = statement.split(None, 3)
        if executemany and words[:2] == ["INSERT", "INTO"] and words[2] in tables:
            columns = statement[statement.index("(") + 1 : statement.index(")")].split(", ")
            bound[words[2]] = ([c.strip('"') for c in columns], [tuple(row) for row in parameters])

    records = [patient(f"u-{i:03}", id=i, name=f"Ana {i} del Valle") for i in (7, 3, 9, 1, 5, 8, 2, 6, 4)]
    with engine.begin() as conn:
        write_page(conn, "rx", SPEC, records, CTX, dt.datetime(2026, 11, 21, tzinfo=dt.UTC), None)
        info = {table: conn.exec_driver_sql(f"PRAGMA table_info({table})").all() for table in tables}
    engine.dispose()
    assert set(bound) == set(tables)
    for table, (columns, rows) in bound.items():
        key = [name for _, name, _, _, _, pk in sorted(info[table], key=lambda column: column[5]) if pk]
        at = [columns.index(name) for name in key]
        assert len(rows) >= len(records), table
        assert rows == sorted(rows, key=lambda row: [row[i] for i in at]), table


PARTICLE = KINDS["particle"].streams["patients"]
_STORED_FORMS = [  # a record stored before, what a source sends the next time, and whether it passes for unchanged
    ({"x": 1}, {"x": 1}, True),
    ({"x": None}, {"x": float("nan")}, False),  # orjson writes NaN and infinity as null
    ({"x": [None]}, {"x": [float("-inf")]}, False),
    ({"x": "nan"}, {"x": float("nan")}, False),  # the stored text of a NaN
    ({"x": 1}, {"x": 1.0}, False),
    ({"x": 1}, {"x": True}, False),
    ({"x": 2**64}, {"x": 2**64}, False),  # beyond what orjson encodes: prepared, then found unchanged
    ({"note": "ssn 123-45-6789"}, {"note": "ssn 123-45-6789"}, False),  # stored masked: prepared, then unchanged
    ({"a": {"b": "c"}}, {"a": {"b": "c"}}, True),  # nested: stored as a copy
]


@pytest.mark.parametrize(("before", "now", "skipped"), _STORED_FORMS)
def test_a_record_passes_for_unchanged_only_as_its_own_stored_form(before: dict, now: dict, skipped: bool) -> None:
    """The runner skips a record whose digest as fetched is its stored digest, without making it storable: that
    must mean that storing it again would store exactly what is stored."""
    from pipeline.sync.prepare import Prepared, fetched, prepare

    stored = prepare(patient("u-1", **before), SPEC, CTX)
    sent = fetched(patient("u-1", **now), SPEC)
    assert isinstance(stored, Prepared) and sent is not None
    assert (sent.digest == stored.digest) is skipped
    again = prepare(sent.raw, SPEC, CTX)
    assert isinstance(again, Prepared)
    if skipped:
        assert again.stored == stored.stored and again.digest == stored.digest


@pytest.mark.parametrize(
    "fields",
    [
        {"token123456789": "tok"},  # its key is masked
        {"ids": [{"type": "ssn123456789", "value": "A-12-B"}]},  # a label masked
        # A label too long to read (over 200 characters) until its SSN is masked: redaction's second pass redacts
        # what its first kept.
        {"ids": [{"type": "SSN " + "x" * 185 + " 123-45-6789", "value": "987 654 321"}]},
        {"note": "ssn 123-45-6789"},
    ],
)
def test_a_stored_form_redaction_made_never_passes_for_unchanged_when_a_source_sends_it(fields: dict) -> None:
    """Redaction is not idempotent everywhere: a source sending back what was stored for a record (hostile, or an
    echo) must have it prepared again, not passed for unchanged as fetched."""
    from pipeline.sync.prepare import Prepared, fetched, prepare

    stored = prepare(patient("u-1", **fields), SPEC, CTX)
    assert isinstance(stored, Prepared) and stored.stored != stored.raw
    sent = fetched(stored.stored, SPEC)
    assert sent is not None and sent.digest != stored.digest


def test_a_secret_word_glued_to_digits_is_a_secret_key() -> None:
    assert redact({"token123456789": "tok", "password2": "p", "apiKey2": "k", "ssn2": "1"}).payload == {
        "token[redacted]": "[redacted]",
        "password2": "[redacted]",
        "apiKey2": "[redacted]",
        "ssn2": "[redacted]",
    }


def test_a_record_a_kind_scrubs_has_no_digest_as_fetched() -> None:
    """Particle's scrub drops what a source sends under the names of the fields it derives: a record holding the
    stored form's ``ssn_last4`` is not that stored form."""
    from pipeline.sync.prepare import Prepared, fetched, prepare

    stored = prepare({"patient_id": "p-1", "ssn": "123-45-6789", "given_name": "Ana"}, PARTICLE, CTX)
    assert isinstance(stored, Prepared) and stored.stored["ssn_last4"] == "6789"
    sent = fetched(stored.stored, PARTICLE)
    assert sent is not None and sent.digest is None
    assert prepare(sent.raw, PARTICLE, CTX).stored != stored.stored  # type: ignore[union-attr]


_REDACTION_CORPUS = [  # one record at least for each of redaction's rules
    {"token": "abc", "password": "p", "ssn": "123-45-6789", "note": "a\x00b", "score": float("nan"), "name": "Ana"},
    {"nested": [{"Token": "x", "n": float("inf")}], "empty_token": "", "odd": "\udc80!", "n": 1, "b": True},
    {"Social Security Number": "1", "ｓｓｎ": "2", "apiKey": "k", "access_token": "t", "Authorization": "Bearer x"},
    {"identifiers": [{"type": "SSN", "value": "123456789", "system": "x"}, {"type": "MRN", "value": "5"}]},
    {"note": "call 518-03-6125 or ５１８－０３－６１２５", "ssn_last4": "6789", "ssn_hmac": "a" * 64},
    {"ssn_last4": "67890", "ssn_hmac": "not ours", "key 123-45-6789": "v", "token123456789": "t"},
    {"deep": functools.reduce(lambda inner, _: {"d": inner}, range(40), {"leaf": 1})},
]


def _rules_corpus() -> list[object]:
    """Records drawn from the rules' own tables, so that a word, label or separator added to them changes what
    the corpus stores; and the tables themselves."""
    from canonical import privacy
    from pipeline.sync import redaction

    words = sorted(privacy._SECRET_WORDS) + ["_".join(phrase) for phrase in privacy._SECRET_PHRASES]
    keys = [spelling for word in words for spelling in (word, word.upper(), f"my{word.title()}", f"{word}2")]
    gaps = [chr(c) for c in (*range(0x20, 0x7F), 0x09, 0xA0, 0x3000, *range(0x2010, 0x2016), 0x2212, 0xFF0D, 0xFF0F)]
    marks = [chr(c) for c in range(0x20, 0x7F) if not chr(c).isalnum()]
    return [
        *_REDACTION_CORPUS,
        {key: "v" for key in keys},
        {"entries": [{label: "SSN", "value": "1", "other": "2"} for label in sorted(redaction._LABELS)]},
        {"texts": [f"123{gap}45{gap}6789" for gap in gaps if not gap.isalnum()]},
        {"labels": [{"type": f"ssn{mark}x", "value": "1"} for mark in marks]},
        {f"k{mark}ssn": "v" for mark in marks},
        [privacy.SSN_PATTERN.pattern, privacy._SEP, sorted(redaction._LABELS), sorted(redaction.DERIVED_KEYS)],
        [redaction.MAX_DEPTH, redaction.TRUNCATED, privacy.REDACTED, redaction._UNSTORABLE.pattern],
    ]


# The fingerprint of what the rules store from the corpus, by redaction.RULES_VERSION.
_REDACTION_FINGERPRINTS = {1: "db711d2ea84c77f365baf69f900a9c41788481aee756bd35621c7d6db1bb8e8b"}


def test_a_change_to_what_redaction_stores_comes_with_a_new_rules_version() -> None:
    """A record passes for unchanged, unredacted, when its digest as fetched is its stored digest: only right if
    the stored form was made by the same rules. Changing them without bumping RULES_VERSION (which changes every
    digest) would leave stored forms of the old rules in place for good."""
    import hashlib

    import orjson

    from pipeline.sync.prepare import payload_hash
    from pipeline.sync.redaction import RULES_VERSION

    stored = [(r.payload, r.too_deep) for r in map(redact, _rules_corpus())]
    fingerprint = hashlib.sha256(orjson.dumps(stored, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert fingerprint == _REDACTION_FINGERPRINTS.get(RULES_VERSION), (
        "what redaction stores has changed: bump pipeline.sync.redaction.RULES_VERSION and record this fingerprint "
        f"under it: {fingerprint}"
    )
    assert payload_hash({"a": 1}) != payload_hash({"a": 1}, as_fetched=True)  # the tag is in the digest
