"""Operating the pipeline through the real command line: --version, environment overrides, `state show|reset`,
`quarantine list|retry`, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from pipeline.kinds import KINDS
from pipeline.storage import leases
from tests.support import (
    PROFILES_AUTH,
    by_stream,
    cli,
    config_yaml,
    count,
    crosswalk_ids,
    engine_for,
    make_config,
    particle_source,
    particle_truth,
    patient_row,
    person_of,
    prescrypto_source,
    profiles_source,
    profiles_truth,
    rows,
    run,
    snapshot,
    source_patients,
)

ROOT = Path(__file__).resolve().parents[1]


def config_file(tmp_path: Path, db_url: str, sources: dict[str, dict[str, Any]]) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(config_yaml(db_url, sources))
    return str(path)


def test_version_is_the_installed_one():
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"patientsync {version('patientsync')}"


def test_environment_overrides_reach_the_run_and_their_errors_name_the_variable(sandbox, tmp_path, sqlite_url):
    # The file points at a database and carries a token that would fail: the environment replaces both.
    cfg = config_file(
        tmp_path, "sqlite:///" + str(tmp_path / "file.db"), {"rx": prescrypto_source(sandbox, token="bad")}
    )
    env_db = tmp_path / "env.db"
    env = {"PATIENTSYNC__DATABASE__URL": f"sqlite:///{env_db}", "PATIENTSYNC__SOURCES__RX__TOKEN": "sandbox-prescrypto"}
    proc = cli("--config", cfg, "sync", env=env)
    assert proc.returncode == 0, proc.stderr
    assert env_db.exists() and not (tmp_path / "file.db").exists()

    proc = cli("--config", cfg, "sync", env={**env, "PATIENTSYNC__SOURCES__RX__PAGE_SIZE": "many-sandbox-prescrypto"})
    assert proc.returncode == 2
    assert "PATIENTSYNC__SOURCES__RX__PAGE_SIZE" in proc.stderr and "many-sandbox" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_state_show_and_reset_start_a_stream_from_its_beginning(sandbox, tmp_path, db_url):
    sources = {"rx": prescrypto_source(sandbox)}
    cfg = config_file(tmp_path, db_url, sources)
    assert cli("--config", cfg, "sync").returncode == 0
    shown = {r["stream"]: r for r in json.loads(cli("--config", cfg, "state", "show", "--json").stdout)}
    assert shown["patients"]["cursor"] == {"offset": 230, "anchor": source_patients(sandbox)[-1]["uid"]}
    assert shown["medics"]["cursor"]["offset"] == 40 and shown["patients"]["lease"] is None

    proc = cli("--config", cfg, "state", "reset", "--source", "rx", "--stream", "patients")
    assert proc.returncode == 0, proc.stderr
    assert "rx/patients: cursor cleared" in proc.stdout
    shown = {r["stream"]: r for r in json.loads(cli("--config", cfg, "state", "show", "--json").stdout)}
    assert shown["patients"]["cursor"] is None and shown["medics"]["cursor"]["offset"] == 40

    # The next incremental run reads every patient again (each unchanged: no write) and none of the medics.
    engine = engine_for(make_config(db_url, sources))
    again = by_stream(run(make_config(db_url, sources), engine, "incremental"))
    assert (again["rx/patients"].counts.fetched, again["rx/patients"].counts.unchanged) == (230, 230)
    assert again["rx/medics"].counts.fetched == 0

    for args, said in (
        (("--stream", "nope"), "--stream 'nope': rx has no such stream"),
        ((), None),
    ):
        proc = cli("--config", cfg, "state", "reset", "--source", "zz", *args)
        assert proc.returncode == 2 and "--source 'zz': no such source" in proc.stderr
        if said:
            proc = cli("--config", cfg, "state", "reset", "--source", "rx", *args)
            assert proc.returncode == 2 and said in proc.stderr


def test_state_reset_is_refused_while_another_process_holds_the_stream(sandbox, tmp_path, db_url):
    sources = {"rx": prescrypto_source(sandbox, streams=["patients"])}
    cfg = config_file(tmp_path, db_url, sources)
    assert cli("--config", cfg, "sync").returncode == 0
    engine = engine_for(make_config(db_url, sources))
    claim = leases.claim_stream(engine, "rx", "patients")  # this live process runs the stream
    try:
        proc = cli("--config", cfg, "state", "reset", "--source", "rx")
        assert proc.returncode == 1
        assert "state reset refused, nothing was reset" in proc.stderr and "another process" in proc.stderr
        assert count(engine, "sync_state", "source = 'rx' AND stream = 'patients'") == 1
        held = json.loads(cli("--config", cfg, "state", "show", "--json").stdout)[0]["lease"]
        assert held["holder"] == claim.holder and held["live"]
    finally:
        claim.release()
    assert cli("--config", cfg, "state", "reset", "--source", "rx").returncode == 0
    assert count(engine, "sync_state") == 0


def _buggy(monkeypatch: pytest.MonkeyPatch, kind: str, stream: str, refused: set[str], key: str) -> None:
    """An earlier version of the mapping: it crashes on the records keyed ``refused``."""
    spec = KINDS[kind].streams[stream]

    def mapping(raw: Any, ctx: Any) -> Any:
        if str(raw.get(key)) in refused:
            raise ValueError("an old bug")
        return spec.mapping(raw, ctx)

    monkeypatch.setitem(KINDS[kind].streams, stream, dataclasses.replace(spec, mapping=mapping))


def test_quarantine_retry_lands_what_the_current_code_takes(sandbox, tmp_path, db_url, monkeypatch):
    sandbox.reset(patients=30, medics=5, seed=3)
    sandbox.post(  # really bad: the current code refuses it too, with its own reason
        "/_sandbox/prescrypto/patients", {"name": "Fecha Mala", "date_of_birth": "1990-13-45", "uid": "bad-date-1"}
    )
    sources = {"rx": prescrypto_source(sandbox, streams=["patients"]), "pa": particle_source(sandbox)}
    config = make_config(db_url, sources)
    engine = engine_for(config)
    uids = [p["uid"] for p in source_patients(sandbox)[:3]]
    _buggy(monkeypatch, "prescrypto", "patients", {*uids, "bad-date-1"}, "uid")
    truth = particle_truth(sandbox)
    with_ssn = sorted(k for k, record in truth.items() if record.get("ssn"))[:2]
    _buggy(monkeypatch, "particle", "patients", set(with_ssn), "patient_id")
    results = by_stream(run(config, engine, "sweep"))
    assert results["rx/patients"].counts.quarantined == 4 and results["pa/patients"].counts.quarantined == 2
    monkeypatch.undo()  # the current code

    cfg = config_file(tmp_path, db_url, sources)
    listed = json.loads(cli("--config", cfg, "quarantine", "list", "--json").stdout)
    assert {(r["source"], r["source_key"]) for r in listed} == {
        *(("rx", u) for u in [*uids, "bad-date-1"]),
        *(("pa", p) for p in with_ssn),
    }
    assert {r["reason"] for r in listed} == {"record: the mapping failed (ValueError)"}
    only_pa = json.loads(cli("--config", cfg, "quarantine", "list", "--source", "pa", "--json").stdout)
    assert {r["source"] for r in only_pa} == {"pa"}

    proc = cli("--config", cfg, "quarantine", "retry")
    assert proc.returncode == 0, proc.stderr
    left = rows(engine, "SELECT source, source_key, reason FROM quarantine")
    assert left == [
        {"source": "rx", "source_key": "bad-date-1", "reason": "date_of_birth: not a valid date (no such day)"}
    ]
    for uid in uids:  # landed with its crosswalk and a person
        patient = patient_row(engine, "rx", uid)
        assert crosswalk_ids(engine, patient["id"])["uid"] == uid
        assert person_of(engine, "rx", uid, "uid")

    def last4(patient_id: str) -> list[dict[str, Any]]:
        return rows(
            engine,
            "SELECT p.ssn_last4 FROM patient p JOIN crosswalk c ON c.entity_id = p.id "
            "WHERE c.source = 'pa' AND c.id_value = :v",
            v=patient_id,
        )

    for patient_id in with_ssn:  # landed and linked; its SSN evidence comes with the source's next answer
        assert last4(patient_id) == [{"ssn_last4": None}]
        assert person_of(engine, "pa", patient_id)
    assert count(engine, "match_key", "patient_id IN (SELECT entity_id FROM crosswalk WHERE id_value = :v)", v=uids[0])

    # The next sweep maps the retried records again from what the source sends; nothing else is written.
    again = by_stream(run(config, engine, "sweep"))
    assert (again["rx/patients"].counts.updated, again["pa/patients"].counts.updated) == (3, 2)
    for patient_id in with_ssn:
        assert last4(patient_id) == [{"ssn_last4": truth[patient_id]["ssn"][-4:]}]
    assert count(engine, "quarantine") == 1
    assert cli("--config", cfg, "quarantine", "retry").returncode == 0  # the bad one stays, nothing else to do
    assert count(engine, "quarantine") == 1


def test_quarantine_retry_skips_a_stream_another_process_runs(sandbox, tmp_path, db_url):
    sandbox.post("/_sandbox/prescrypto/patients", {"name": "Fecha Mala", "date_of_birth": "1990-02-30", "uid": "b1"})
    sources = {"rx": prescrypto_source(sandbox, streams=["patients"])}
    cfg = config_file(tmp_path, db_url, sources)
    assert cli("--config", cfg, "backfill").returncode == 0
    engine = engine_for(make_config(db_url, sources))
    claim = leases.claim_stream(engine, "rx", "patients")
    try:
        proc = cli("--config", cfg, "quarantine", "retry")
    finally:
        claim.release()
    assert proc.returncode == 1 and "rx/patients: not retried: " in proc.stderr
    assert rows(engine, "SELECT run_id IS NOT NULL AS from_a_run FROM quarantine") == [{"from_a_run": True}]


def _table(stdout: str) -> dict[str, dict[str, str]]:
    """The runs table `sync` prints: source/stream -> column -> cell."""
    lines = [line for line in stdout.splitlines() if line.startswith(("┃", "│"))]
    cells = [[cell.strip() for cell in line.strip("┃│").split("┃" if line[0] == "┃" else "│")] for line in lines]
    header, *body = cells
    return {f"{r[0]}/{r[1]}": dict(zip(header, r, strict=True)) for r in body}


def test_a_dry_run_reports_what_a_sync_then_does_and_writes_nothing(sandbox, tmp_path, db_url):
    sandbox.reset(patients=40, medics=5, seed=4)
    sources = {"rx": prescrypto_source(sandbox, streams=["patients"]), "pf": profiles_source(sandbox)}
    config = make_config(db_url, sources)
    engine = engine_for(config)
    run(config, engine, "sweep")
    # At the sources: one new and one bad Prescrypto patient; a changed and a deleted profiles patient.
    sandbox.post("/_sandbox/prescrypto/patients", {"name": "Ana Nueva", "date_of_birth": "1990-01-02", "uid": "n1"})
    sandbox.post("/_sandbox/prescrypto/patients", {"name": "Fecha Mala", "date_of_birth": "1990-02-30", "uid": "b1"})
    changed, gone = profiles_truth(sandbox)[:2]
    sandbox.client.put(
        f"/profiles/patients/patients/{changed['unique_id']}/", headers=PROFILES_AUTH, json={"patient_race": "Otra"}
    )
    sandbox.client.delete(f"/profiles/patients/patients/{gone['unique_id']}/", headers=PROFILES_AUTH)
    before = snapshot(engine)
    runs_before = count(engine, "sync_run")
    cursors = rows(engine, "SELECT source, stream, cursor FROM sync_state ORDER BY source, stream")

    cfg = config_file(tmp_path, db_url, sources)
    proc = cli("--config", cfg, "sync", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "dry run: what would be written (nothing was)" in proc.stdout
    told = _table(proc.stdout)
    assert [told["rx/patients"][c] for c in ("inserted", "quarantined")] == ["1", "1"]
    assert [told["pf/patients"][c] for c in ("updated", "deleted", "unchanged")] == ["1", "1", "38"]
    assert snapshot(engine) == before and count(engine, "sync_run") == runs_before
    assert rows(engine, "SELECT source, stream, cursor FROM sync_state ORDER BY source, stream") == cursors
    assert count(engine, "sync_lease") == 0 and count(engine, "identity_pending") == 0

    # The sync itself does what the dry run said.
    done = _table(cli("--config", cfg, "sync").stdout)
    for stream, counts in told.items():
        assert {k: v for k, v in done[stream].items() if k != "status"} == {
            k: v for k, v in counts.items() if k != "status"
        }


def test_a_dry_run_before_the_first_sync_creates_no_database(sandbox, tmp_path):
    db = tmp_path / "not-yet.db"
    cfg = config_file(tmp_path, f"sqlite:///{db}", {"rx": prescrypto_source(sandbox, streams=["patients"])})
    proc = cli("--config", cfg, "sync", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "compares with an empty one" in proc.stderr
    assert _table(proc.stdout)["rx/patients"]["inserted"] == "230"
    assert not db.exists()


@pytest.mark.empty_database  # it asks whether a dry run creates the schema
def test_a_dry_run_neither_sets_up_nor_upgrades_a_schema(sandbox, tmp_path, db_url):
    """An empty SQLite file or a fresh PostgreSQL database stays empty; one of another revision is refused."""
    from sqlalchemy import inspect

    from pipeline.storage.db import open_engine

    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).touch()
    sources = {"rx": prescrypto_source(sandbox, streams=["patients"])}
    cfg = config_file(tmp_path, db_url, sources)
    proc = cli("--config", cfg, "sync", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert _table(proc.stdout)["rx/patients"]["inserted"] == "230"
    if db_url.startswith("sqlite"):  # not a byte written: not even the switch to WAL that opening it makes
        file = Path(db_url.removeprefix("sqlite:///"))
        assert file.stat().st_size == 0 and not Path(f"{file}-wal").exists()
    bare = open_engine(db_url)
    assert inspect(bare).get_table_names() == []

    engine = engine_for(make_config(db_url, sources))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0004'")
    proc = cli("--config", cfg, "sync", "--dry-run")
    assert proc.returncode == 2 and "its schema is revision 0004" in proc.stderr
    assert rows(engine, "SELECT version_num FROM alembic_version") == [{"version_num": "0004"}]


def test_keys_a_source_chose_are_shown_as_text_and_masked(sandbox, tmp_path, sqlite_url):
    """A key is the source's text: rich markup in it is printed as it is, and an SSN or the token is masked."""
    for uid in ("123-45-6789", "sandbox-prescrypto"):
        sandbox.post("/_sandbox/prescrypto/patients", {"name": "Fecha Mala", "date_of_birth": "1990-02-30", "uid": uid})
    sandbox.post("/_sandbox/prescrypto/patients", {"name": "Ana Marca", "date_of_birth": "1990-01-02", "uid": "[/]"})
    cfg = config_file(tmp_path, sqlite_url, {"rx": prescrypto_source(sandbox, streams=["patients"])})
    assert cli("--config", cfg, "sync").returncode == 0
    for command in (("state", "show"), ("status",)):
        proc = cli("--config", cfg, *command)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert '"anchor": "[/]"' in proc.stdout
    for args in ((), ("--json",)):
        proc = cli("--config", cfg, "quarantine", "list", *args)
        assert proc.returncode == 0, proc.stderr
        assert "123-45-6789" not in proc.stdout and "sandbox-prescrypto" not in proc.stdout
        assert proc.stdout.count("[redacted]") == 2


def test_a_database_failure_in_an_operations_command_is_one_line():
    import typer
    from sqlalchemy.exc import OperationalError

    from pipeline.app.commands.operations import database_errors

    with pytest.raises(typer.Exit) as exited, database_errors("quarantine retry"):
        raise OperationalError("UPDATE quarantine SET reason = 'Ana Pérez'", {}, Exception("database is locked"))
    assert exited.value.exit_code == 1


def test_retry_leaves_what_a_stored_form_cannot_show(sqlite_url):
    """Rows an older version wrote, and payloads redaction changed: none lands, and no forged SSN evidence is
    taken from a stored form."""
    from pipeline.sync.retry import retry_quarantine

    config = make_config(sqlite_url, {"pa": {"kind": "particle", "base_url": "http://127.0.0.1:1/p", "token": "t"}})
    engine = engine_for(config)
    base = {"given_name": "Ana", "family_name": "Uno", "date_of_birth": "1990-01-02"}
    staged = {
        # an older version dropped an SSN it could not read
        "pt-old-bad-ssn": ({**base, "patient_id": "pt-old-bad-ssn"}, "ssn: not a social security number"),
        # the value refused was masked when stored
        "pt-masked-dob": ({**base, "patient_id": "pt-masked-dob", "date_of_birth": "[redacted]"}, "date_of_birth: x"),
        # an older version stored a source's own SSN evidence as it came; the record itself is good now
        "pt-forged": (
            {**base, "patient_id": "pt-forged", "ssn_last4": "3333", "ssn_hmac": "ab" * 32},
            "record: the mapping failed (ValueError)",
        ),
    }
    with engine.begin() as conn:
        for key, (payload, reason) in staged.items():
            conn.execute(
                text(
                    "INSERT INTO quarantine (source, stream, source_key, reason, payload, payload_hash, created_at) "
                    "VALUES ('pa', 'patients', :k, :r, :p, 'h', CURRENT_TIMESTAMP)"
                ),
                {"k": key, "r": reason, "p": json.dumps(payload)},
            )
    (retried,), _ = retry_quarantine(config, engine)
    assert (retried.landed, retried.kept) == (1, 2)
    assert {r["source_key"] for r in rows(engine, "SELECT source_key FROM quarantine")} == {
        "pt-old-bad-ssn",
        "pt-masked-dob",
    }
    assert rows(engine, "SELECT ssn_last4 FROM patient") == [{"ssn_last4": None}]
    assert count(engine, "match_key", "key_type = 'ssn'") == 0


def test_a_dry_run_decides_deletions_as_the_sync_would_when_records_come_back(sandbox, tmp_path, sqlite_url):
    """Records back after a deletion, and new ones, count as live for the max_delete_fraction guard."""
    sandbox.reset(patients=50, medics=5, seed=6)
    sources = {"pf": profiles_source(sandbox)}
    cfg = config_file(tmp_path, sqlite_url, sources)
    assert cli("--config", cfg, "sync").returncode == 0
    everyone = profiles_truth(sandbox)
    for record in everyone[:20]:
        sandbox.client.delete(f"/profiles/patients/patients/{record['unique_id']}/", headers=PROFILES_AUTH)
    assert _table(cli("--config", cfg, "sync").stdout)["pf/patients"]["deleted"] == "20"
    for record in everyone[:20]:  # back again, and 20 others gone: 20 of the 50 would go
        sandbox.post("/_sandbox/profiles/patients", record)
    for record in everyone[20:40]:
        sandbox.client.delete(f"/profiles/patients/patients/{record['unique_id']}/", headers=PROFILES_AUTH)

    told = _table(cli("--config", cfg, "sync", "--dry-run").stdout)["pf/patients"]
    done = _table(cli("--config", cfg, "sync").stdout)["pf/patients"]
    assert told == done and done["deleted"] == "20"


@pytest.mark.parametrize("command", [("status",), ("sync", "--dry-run"), ("quarantine", "list"), ("state", "show")])
def test_a_file_that_is_not_a_database_is_one_line(tmp_path, command):
    junk = tmp_path / "junk.db"
    junk.write_text("not a database, just text")
    cfg = config_file(
        tmp_path, f"sqlite:///{junk}", {"rx": {"kind": "prescrypto", "base_url": "http://x", "token": "t"}}
    )
    proc = cli("--config", cfg, *command)
    assert proc.returncode == 2 and "cannot open it: file is not a database" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_retry_finds_stale_the_rows_whose_record_is_stored_with_their_very_payload(db_url):
    """A quarantine row whose record has landed since with the same payload goes, and nothing is written: whether
    the record was stored as it came (a Prescrypto patient) or redaction made its stored form (a Particle patient
    whose SSN its scrub replaced)."""
    import datetime as dt

    from mappings.context import MappingContext
    from pipeline.sync.retry import retry_quarantine
    from tests.support import write_page

    sources = {
        "rx": {"kind": "prescrypto", "base_url": "http://127.0.0.1:1/rx", "token": "t", "streams": ["patients"]},
        "pa": {"kind": "particle", "base_url": "http://127.0.0.1:1/p", "token": "t"},
    }
    config = make_config(db_url, sources)
    engine = engine_for(config)
    ctx, now = MappingContext(today=dt.date(2026, 11, 21)), dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    records = {
        "rx": {"id": 1, "uid": "u-1", "name": "Ana del Valle", "date_of_birth": "1990-01-02", "gender": "F"},
        "pa": {"patient_id": "p-1", "given_name": "Ana", "family_name": "Uno", "ssn": "123-45-6789"},
    }
    with engine.begin() as conn:
        for source, record in records.items():
            kind = sources[source]["kind"]
            assert write_page(conn, source, KINDS[kind].streams["patients"], [record], ctx, now, None).inserted == 1
        stored = dict(conn.execute(text("SELECT source, payload FROM source_record")).all())
        for source, payload in stored.items():
            conn.execute(
                text(
                    "INSERT INTO quarantine (source, stream, source_key, reason, payload, payload_hash, created_at) "
                    "VALUES (:s, 'patients', :k, 'record: the mapping failed (ValueError)', :p, 'h', :t)"
                ),
                {"s": source, "k": "u-1" if source == "rx" else "p-1", "p": _text(payload), "t": now},
            )
    retried = {r.source: r for r in retry_quarantine(config, engine)[0]}
    assert {s: (r.stale, r.landed) for s, r in retried.items()} == {"rx": (1, 0), "pa": (1, 0)}
    assert count(engine, "quarantine") == 0


def _text(payload: Any) -> str:
    """A JSON column's value as read (SQLite gives text, PostgreSQL the value) as the text a statement binds."""
    return payload if isinstance(payload, str) else json.dumps(payload)
