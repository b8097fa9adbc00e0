"""Records a careless or hostile source may send: each is quarantined with a true reason naming its field, the rest
of its page lands, the stream succeeds and stays unstuck; no full SSN reaches storage under any key or in any text.
(How quarantine rows are cleared once a record is good again or gone: tests/test_sync_e2e.py.)"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings.context import MappingContext
from pipeline.kinds import KINDS
from pipeline.sync.retry import retry_quarantine
from pipeline.sync.runner import INCREMENTAL, SWEEP
from tests.support import (
    by_stream,
    count,
    engine_for,
    gauges_source,
    make_config,
    particle_source,
    prescrypto_source,
    profiles_source,
    rows,
    run,
    source_patients,
    write_page,
)

SSN_FORMS = ["518-03-6125", "518 03 6125", "518036125", "518.03.6125", "518\u201303\u20136125", "５１８-０３-６１２５"]


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def _succeeded(results: list[Any]) -> dict[str, Any]:
    found = by_stream(results)
    assert all(r.status == "succeeded" for r in found.values()), {k: (r.status, r.error) for k, r in found.items()}
    return found


def _reasons(engine: Any) -> dict[tuple[str, str], str]:
    return {(r["stream"], r["source_key"]): r["reason"] for r in rows(engine, "SELECT * FROM quarantine")}


def test_bad_and_hostile_records_are_quarantined_with_true_reasons_and_the_page_lands(sandbox, db_url):
    long = "x" * 10_000
    stage = {
        "/_sandbox/prescrypto/patients": [
            {"name": "Fecha Mala", "date_of_birth": "1990-13-45", "uid": "bad-date-1", "gender": "F"},
            {"name": "Sin Uid", "date_of_birth": "1990-01-01", "uid": ""},
            {"uid": "u-long-file", "name": "Ana Uno", "external_patient_file": long},
            {"uid": "u-deep", "name": "Ana Dos", "campaign": _nested(600)},
            {"uid": long, "name": "Ana Tres"},
            {"uid": True, "name": "Ana Cuatro"},
            {"uid": "a\u0000b", "name": "Ana Cinco"},
        ],
        "/_sandbox/profiles/patients": [
            {"unique_id": "pat-bad", "patient_latitude": "95.5"},
            {"unique_id": "pat-long", "patient_profile": {"unique_id": long}},
        ],
        "/_sandbox/gauges/patients": [{"id": 99991, "first_name": "X", "date_of_birth": "2999-01-01"}],
        "/_sandbox/particle/patients": [
            {"patient_id": "pt-bad-ssn", "given_name": "Ana", "ssn": "12-34"},
            {"patient_id": "pt-ssn-dob", "given_name": "Ana", "date_of_birth": "123-45-6789"},  # stored masked
        ],
        "/_sandbox/gauges/gauges": [
            {
                "id": 999_991,
                "patient_id": 1,
                "gauge_type": "mood",
                "value": 50,
                "scale_min": 1,
                "scale_max": 10,
                "recorded_at": "2026-06-30T10:00:00.000Z",
            },
            {
                "id": 999_001,
                "patient_id": 1,
                "gauge_type": "mood",
                "value": 5,
                "recorded_at": "0001-01-01T00:00:00+01:00",
            },
        ],
    }
    for path, records in stage.items():
        for record in records:
            assert sandbox.client.post(path, json=record).status_code == 201
    sources = {"rx": prescrypto_source(sandbox, streams=["patients"]), "pf": profiles_source(sandbox)}
    sources["ga"] = gauges_source(sandbox)
    sources["pa"] = particle_source(sandbox)
    config = make_config(db_url, sources)
    engine = engine_for(config)

    for mode in (SWEEP, INCREMENTAL, SWEEP):  # every later run succeeds too: no stream is stuck on a record
        results = _succeeded(run(config, engine, mode))
    assert count(engine, "patient", "deleted_at IS NULL") == 4 * 230  # every good record beside them landed
    assert {k: r.counts.quarantined for k, r in results.items()} == {
        "rx/patients": 7,
        "pf/patients": 2,
        "ga/patients": 1,
        "ga/gauges": 2,
        "pa/patients": 2,
    }
    reasons = _reasons(engine)
    by_reason = {reason: key for (_, key), reason in reasons.items()}
    assert reasons[("patients", "bad-date-1")] == "date_of_birth: not a valid date (no such day)"
    assert by_reason["uid: is empty"].startswith("sha256:")  # staged with "uid": ""
    assert reasons[("patients", "pat-bad")] == "patient_latitude: outside -90..90 degrees"
    assert reasons[("patients", "99991")] == "date_of_birth: is in the future"
    assert reasons[("gauges", "999991")] == "value: is outside the scale 1..10"
    assert reasons[("patients", "pt-bad-ssn")] == (
        "ssn: not a social security number (expected nine digits: three, two and four, or run together)"
    )
    assert "12-34" not in str(rows(engine, "SELECT payload FROM quarantine WHERE source = 'pa'"))
    assert reasons[("patients", "u-long-file")] == "external_patient_file: is longer than 255 characters"
    assert reasons[("patients", "u-deep")] == "record: nested more than 32 levels deep"
    assert reasons[("patients", "pat-long")] == "patient_profile.unique_id: is longer than 255 characters"
    assert reasons[("gauges", "999001")] == "recorded_at: is outside the years 1 to 9999 in UTC"
    for reason in ("uid: is longer than 255 characters", "uid: is a boolean, not an identifier"):
        assert by_reason[reason].startswith("sha256:")
    assert "uid: contains a NUL or an unpaired surrogate" in by_reason
    assert results["ga/gauges"].counts.fetched >= 1
    deep = rows(engine, "SELECT payload FROM quarantine WHERE source_key = 'u-deep'")[0]["payload"]
    assert "[truncated: nested too deep]" in (deep if isinstance(deep, str) else json.dumps(deep))

    # Mapped again from what was stored, each is still refused or left as it is: what a stored payload lost (the
    # depth cut off, a key with a NUL made storable) must not let a record land that a sync refuses.
    retried, _ = retry_quarantine(config, engine)
    assert sum(r.landed for r in retried) == 0
    assert _reasons(engine) == reasons
    assert count(engine, "patient", "deleted_at IS NULL") == 4 * 230


def test_no_full_ssn_is_stored_under_any_key_or_in_any_text(sandbox, db_url):
    ssn = "518-03-6125"
    particle = [
        {"patient_id": "pt-k1", "given_name": "A", "social_security_number": ssn},
        {"patient_id": "pt-k2", "given_name": "B", "patient_ssn": ssn},
        {"patient_id": "pt-k3", "given_name": "C", "ssn_number": ssn},
        {"patient_id": "pt-k4", "given_name": "D", "ssn ": ssn},
        {"patient_id": "pt-k5", "given_name": "E", "ｓｓｎ": ssn},
        {"patient_id": "pt-k6", "given_name": "F", "identifiers": [{"type": "SSN", "value": "5180-36125"}]},
        {"patient_id": "pt-k7", "given_name": "G", "notes": f"ssn on file: {SSN_FORMS[1]}; also {SSN_FORMS[5]}"},
        {"patient_id": "pt-k8", "given_name": "H", "ssn": SSN_FORMS[3]},  # the documented key, another form
        {"patient_id": "pt-k9", "given_name": "I", "ssn_last4": ssn, "ssn_hmac": SSN_FORMS[2]},  # impostors
        {"patient_id": "pt-k10", "identifiers": [{"Type": "SSN", "Value": 518036125}], "SSNumber": 518036125},
        {"patient_id": "pt-k11", "extra": {"SOCIALSECURITYNUMBER": 518036125, "ssn2": 518036125}},
        {"patient_id": "pt-k12", "notes": "SSN ５１８－０３－６１２５ (was 518-03 6125)", "memo": "ss# 518/03.6125"},
        {"patient_id": "pt-k13", "alt_ids": [{"type": "SSN", "area": "518", "group": "03", "serial": "6125"}]},
    ]
    for record in particle:
        assert sandbox.client.post("/_sandbox/particle/patients", json=record).status_code == 201
    for i, form in enumerate(SSN_FORMS):
        prescrypto = {"uid": f"u-ssn-{i}", "name": "Ana", "campaign": f"ref {form}"}
        assert sandbox.client.post("/_sandbox/prescrypto/patients", json=prescrypto).status_code == 201
    sources = {"pa": particle_source(sandbox), "rx": prescrypto_source(sandbox, streams=["patients"])}
    config = make_config(db_url, sources)
    engine = engine_for(config)
    _succeeded(run(config, engine, SWEEP))

    stored = json.dumps(
        rows(engine, "SELECT payload FROM source_record") + rows(engine, "SELECT payload FROM quarantine"),
        ensure_ascii=False,
        default=str,
    )
    for form in [*SSN_FORMS, "518036125", "5180-36125", "５１８－０３－６１２５", "518-03 6125", "518/03.6125"]:
        assert form not in stored
    k13 = rows(engine, "SELECT payload FROM source_record WHERE source_key = 'pt-k13'")[0]["payload"]
    k13 = k13 if isinstance(k13, dict) else json.loads(k13)
    assert k13["alt_ids"] == [{"type": "SSN", "area": "[redacted]", "group": "[redacted]", "serial": "[redacted]"}]
    k8 = rows(engine, "SELECT payload FROM source_record WHERE source_key = 'pt-k8'")[0]["payload"]
    k8 = k8 if isinstance(k8, dict) else json.loads(k8)
    assert k8["ssn_last4"] == "6125" and len(k8["ssn_hmac"]) == 64  # the documented key keeps what matching needs
    assert rows(engine, "SELECT ssn_last4 FROM patient WHERE ssn_last4 = '6125'")  # ssn_last4 is kept
    if db_url.startswith("sqlite"):  # the file itself, journal included
        path = db_url.removeprefix("sqlite:///")
        raw = b"".join(Path(p).read_bytes() for p in (path, path + "-wal") if Path(p).exists())
        for form in SSN_FORMS:
            assert form.encode() not in raw


def test_a_new_sqlite_file_is_readable_by_its_owner_only(tmp_path):
    url = f"sqlite:///{tmp_path}/private.db"
    engine = engine_for(make_config(url, {"x": {"kind": "prescrypto", "base_url": "http://h/", "token": "t"}}))
    with engine.begin() as conn:
        write_page(
            conn,
            "x",
            KINDS["prescrypto"].streams["patients"],
            [_good("prescrypto", "patients")],
            CTX,
            dt.datetime(2026, 11, 21, tzinfo=dt.UTC),
            run_id=None,
        )
    for name in ("private.db", "private.db-wal", "private.db-shm"):
        if (tmp_path / name).exists():
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name


# The real write path, fuzzed: hostile records beside a good one, on both databases --------------------------
_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
_json = st.recursive(
    _json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
)
_hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=20),
    st.just("x" * 5000),
    st.sampled_from(SSN_FORMS),
    st.sampled_from(["\x00", "\ud800", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1900-01-01"]),
)
_hostile_value = st.one_of(_json, _hostile_text, st.builds(_nested, st.integers(30, 80)))
CTX = MappingContext(today=dt.date(2026, 11, 21), phone_region="US", ssn_key=b"k" * 32)
STREAMS = [(kind, name) for kind, info in KINDS.items() for name in info.streams]


def _good(kind: str, stream: str) -> dict[str, Any]:
    good: dict[tuple[str, str], dict[str, Any]] = {
        ("prescrypto", "patients"): {"id": 1, "uid": "good", "name": "Ana Ruiz"},
        ("prescrypto", "medics"): {"id": 1, "name": "Ana Ruiz"},
        ("profiles", "patients"): {"unique_id": "good"},
        ("gauges", "patients"): {"id": 1, "first_name": "Ana"},
        ("gauges", "gauges"): {"id": 1, "patient_id": 1, "gauge_type": "mood", "value": 5},
        ("particle", "patients"): {"patient_id": "good", "given_name": "Ana"},
    }
    return good[(kind, stream)]


@pytest.mark.parametrize("kind,stream", STREAMS)
def test_fuzzed_hostile_records_never_fail_their_page(db_url, kind, stream):
    engine = engine_for(make_config(db_url, {"x": {"kind": "prescrypto", "base_url": "http://h/", "token": "t"}}))
    spec = KINDS[kind].streams[stream]
    key_field = spec.stream.key
    good = _good(kind, stream)
    now = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    pages = [0]

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        st.lists(
            st.dictionaries(
                st.sampled_from([key_field, *good, "ssn", "notes", "address", "patient_profile", "patient_doctor"])
                | st.text(max_size=8),
                _hostile_value,
                max_size=6,
            )
            | _hostile_value,
            min_size=1,
            max_size=5,
        )
    )
    def check(hostile: list[Any]) -> None:
        pages[0] += 1
        source = f"fuzz{pages[0]}"
        with engine.begin() as conn:
            counts = write_page(conn, source, spec, [*hostile, good], CTX, now, run_id=None)
        assert counts.fetched == len(hostile) + 1
        landed = rows(engine, "SELECT source_key FROM source_record WHERE source = :s", s=source)
        assert {"source_key": str(good[key_field])} in landed
        stored = json.dumps(rows(engine, "SELECT payload FROM source_record WHERE source = :s", s=source), default=str)
        assert "518-03-6125" not in stored and "518036125" not in stored

    check()


def test_bytes_that_are_not_utf8_or_a_huge_integer_cost_only_their_record(db_url):
    """A server cannot be made to send these through the sandbox's JSON staging: a transport serves them."""
    import httpx

    from connectors import prescrypto as prescrypto_streams
    from connectors.client import SourceClient
    from connectors.stream import read_pages

    body = b'[{"id": 1, "uid": "u-bad-bytes", "name": "Ana ' + bytes([0xFF, 0xFE]) + b'"}, '
    body += b'{"uid": "u-huge", "id": ' + b"7" * 5000 + b', "name": "Ana"}, {"id": 3, "uid": "u-good", "name": "Ana"}]'
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    with SourceClient("x", "http://test", {}, transport=transport) as client:
        stream = prescrypto_streams.PATIENTS
        _, page = next(read_pages(client, stream, {"limit": 100, "offset": 0}))
    engine = engine_for(make_config(db_url, {"x": {"kind": "prescrypto", "base_url": "http://h/", "token": "t"}}))
    with engine.begin() as conn:
        counts = write_page(
            conn,
            "x",
            KINDS["prescrypto"].streams["patients"],
            page.records,
            CTX,
            dt.datetime(2026, 11, 21, tzinfo=dt.UTC),
            run_id=None,
        )
    assert (counts.inserted, counts.quarantined) == (2, 1)  # the odd bytes land as U+FFFD; the huge id does not
    assert rows(engine, "SELECT reason FROM quarantine") == [{"reason": "id: is longer than 255 characters"}]


def test_two_spellings_of_one_integer_id_are_one_record(sandbox, db_url):
    from sqlalchemy import text

    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["medics"])})
    engine = engine_for(config)
    _succeeded(run(config, engine, SWEEP))
    # An older version stored a medic under "007"; the source now sends 7 (the same medic).
    medic = rows(engine, "SELECT source_key, entity_id FROM source_record WHERE stream = 'medics'")[0]
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE source_record SET source_key = :spelt WHERE source_key = :key AND stream = 'medics'"),
            {"spelt": "00" + medic["source_key"], "key": medic["source_key"]},
        )
    result = _succeeded(run(config, engine, SWEEP))["rx/medics"]
    assert result.deleted == 1  # the old spelling's row goes
    assert rows(engine, "SELECT deleted_at FROM medic WHERE id = :id", id=medic["entity_id"]) == [{"deleted_at": None}]
    assert record_key_of("007") == "7"


def record_key_of(value: Any) -> str | None:
    from connectors.prescrypto import MEDICS

    return MEDICS.record_key({"id": value})


def test_relinking_more_patients_than_a_statement_has_parameters(pg_url):
    """A profiles listing is one page: 70,000 patients relinked at once must still be one valid statement."""
    from pipeline.storage import load
    from pipeline.sync.rows import _Rows

    engine = engine_for(make_config(pg_url, {"x": {"kind": "prescrypto", "base_url": "http://h/", "token": "t"}}))
    rows_of_page = _Rows("pf", dt.datetime(2026, 11, 21, tzinfo=dt.UTC))
    rows_of_page.relinked_patients = {f"{i:036d}" for i in range(70_000)}
    with engine.begin() as conn:
        load.write(conn, rows_of_page.page("patients", [], []))  # before: "number of parameters must be ..."


def test_a_stored_record_whose_new_version_is_quarantined_before_mapping_stays_live(sandbox, db_url):
    # The source still lists it: a complete sweep must not take it for gone and soft-delete what is stored.
    config = make_config(db_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    engine = engine_for(config)
    _succeeded(run(config, engine, SWEEP))
    patient = source_patients(sandbox)[7]
    edited = sandbox.client.patch(f"/_sandbox/prescrypto/patients/{patient['id']}", json={"campaign": _nested(600)})
    assert edited.status_code == 200
    result = _succeeded(run(config, engine, SWEEP))["rx/patients"]
    assert (result.counts.quarantined, result.deleted) == (1, 0)
    live = "deleted_at IS NULL AND source_key = :k"
    assert len(rows(engine, f"SELECT 1 FROM source_record WHERE {live}", k=patient["uid"])) == 1
    assert _reasons(engine)[("patients", patient["uid"])] == "record: nested more than 32 levels deep"
