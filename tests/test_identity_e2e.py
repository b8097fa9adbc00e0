"""Identity end to end: the sandbox's four patient APIs over real HTTP into a real SQLite file and a real
PostgreSQL database, linked as the sync runs. The sandbox renders each of its synthetic people once per API, so
the truth is known: person i is gauges id i (with gaps), profiles pat00000i, and so on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from canonical.ids import canonical_id
from pipeline.app.identity import decide_manually, find_person, person_view, undo
from pipeline.identity.keys import match_keys
from pipeline.storage import identity as store
from pipeline.sync import linking
from pipeline.sync.linking import link_pending
from tests.support import (
    cli,
    config_yaml,
    count,
    engine_for,
    gauges_source,
    make_config,
    particle_source,
    person_of,
    prescrypto_source,
    profiles_source,
    rows,
    run,
    swept,
)

PEOPLE = 60  # fewer than the sandbox fixture's 230: four sources of them are synced by every test here


def _sources(sandbox: Any) -> dict[str, dict[str, Any]]:
    return {
        "rx": prescrypto_source(sandbox, streams=["patients"], page_size=100),
        "pf": profiles_source(sandbox),
        "ga": gauges_source(sandbox, streams=["patients"], page_size=100),
        "pa": particle_source(sandbox, concurrency=8),
    }


def _identity(engine: Any) -> dict[str, list[tuple[str, ...]]]:
    with engine.connect() as conn:
        return {
            table: sorted(tuple(map(str, row)) for row in conn.execute(text(f"SELECT * FROM {table}")))
            for table in ("person", "identity_link", "identity_history", "match_key")
        } | {"members": sorted(tuple(map(str, r)) for r in conn.execute(text("SELECT id, person_id FROM patient")))}


def _synced(sandbox: Any, db_url: str) -> tuple[Any, Any]:
    return swept(sandbox, db_url, _sources(sandbox), patients=PEOPLE, medics=5, seed=7)


def test_one_person_per_synthetic_person_across_the_four_apis_and_a_second_sync_changes_nothing(
    sandbox: Any, db_url: str
) -> None:
    config, engine = _synced(sandbox, db_url)
    assert count(engine, "patient", "deleted_at IS NULL") == 4 * PEOPLE
    assert count(engine, "patient", "deleted_at IS NULL AND person_id IS NULL") == 0
    assert count(engine, "person", "deleted_at IS NULL") == PEOPLE
    assert count(engine, "identity_pending") == 0
    # No person holds two patients of one source; every person holds one of each source here.
    per_source = rows(engine, "SELECT person_id, source, count(*) AS n FROM patient GROUP BY person_id, source")
    assert {r["n"] for r in per_source} == {1}
    # profiles' pat000001 is the sandbox's person 1: Prescrypto's first patient, gauges' first.
    first = person_of(engine, "pf", "pat000001")
    ids = rows(engine, "SELECT source, id_type, id_value FROM person_identifier WHERE person_id = :p", p=first)
    assert {r["source"] for r in ids} == {"rx", "pf", "ga", "pa"}
    before = _identity(engine)
    assert all(r.ok for r in run(config, engine, "sweep"))
    assert _identity(engine) == before  # unchanged records are never queued: no link, person or key moves


def test_a_link_pass_in_many_small_batches_finds_every_person(
    sandbox: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch decides against what the batches before it committed: small batches find the same persons."""
    sandbox.reset(patients=PEOPLE, medics=5, seed=7)
    config = make_config(db_url, _sources(sandbox))
    config = config.model_copy(update={"identity": config.identity.model_copy(update={"link_during_sync": False})})
    engine = engine_for(config)
    assert all(r.ok for r in run(config, engine, "sweep"))
    assert count(engine, "identity_pending") == 4 * PEOPLE
    monkeypatch.setattr(linking, "BATCH", 7)
    link_pending(engine, config.identity)
    assert count(engine, "identity_pending") == 0
    assert count(engine, "person", "deleted_at IS NULL") == PEOPLE
    per_source = rows(engine, "SELECT person_id, source, count(*) AS n FROM patient GROUP BY person_id, source")
    assert {r["n"] for r in per_source} == {1}


def test_a_changed_birth_date_leaves_its_person_and_a_deleted_patient_too(sandbox: Any, db_url: str) -> None:
    config, engine = _synced(sandbox, db_url)
    person = person_of(engine, "ga", "1")
    sandbox.client.patch("/_sandbox/gauges/patients/1", json={"date_of_birth": "1901-01-01"}).raise_for_status()
    assert all(r.ok for r in run(config, engine, "sweep"))
    moved = person_of(engine, "ga", "1")
    assert moved != person
    assert count(engine, "patient", "person_id = :p", p=person) == 3  # the other three stay
    history = rows(engine, "SELECT change, before FROM identity_history WHERE after = :m", m=moved)
    assert {"joined"} <= {r["change"] for r in history}
    # Gone from the API: soft-deleted, it leaves its person, which (alone) is soft-deleted.
    sandbox.client.delete("/_sandbox/gauges/patients/1").raise_for_status()
    assert all(r.ok for r in run(config, engine, "sweep"))
    assert count(engine, "person", "id = :m AND deleted_at IS NOT NULL", m=moved) == 1
    assert count(engine, "patient", "deleted_at IS NULL AND person_id IS NULL") == 0


def test_a_changed_patients_match_keys_replace_its_old_ones_in_both_tables(sandbox: Any, db_url: str) -> None:
    """``match_key`` has no index by patient: a changed patient's old keys are found through its ``patient_keys``
    list, deleted by their whole key, and both tables hold exactly the keys of the patients as stored."""
    import json

    config, engine = _synced(sandbox, db_url)
    patient_id = canonical_id("ga", "patient", "1")
    before = rows(engine, "SELECT key_value FROM match_key WHERE patient_id = :p", p=patient_id)
    assert any("1901-01-01" not in r["key_value"] for r in before)
    sandbox.client.patch("/_sandbox/gauges/patients/1", json={"date_of_birth": "1901-01-01"}).raise_for_status()
    assert all(r.ok for r in run(config, engine, "sweep"))

    held = {(r["key_type"], r["key_value"], r["patient_id"]) for r in rows(engine, "SELECT * FROM match_key")}
    listed = {
        (key_type, value, r["patient_id"])
        for r in rows(engine, "SELECT * FROM patient_keys")
        for key_type, value in json.loads(r["match_keys"])
    }
    assert held == listed and len(held) > 10 * PEOPLE
    with engine.connect() as conn:
        stored = store.patient_rows(conn, [patient_id])[patient_id]
    mine = {(t, v) for t, v, p in held if p == patient_id}
    assert mine == set(match_keys(linking._profile_of(stored)))
    dated = {v for t, v in mine if t in ("name_dob", "dob_zip", "dob_street")}
    assert dated and all(v.startswith("1901-01-01") or ":1901-01-01" in v for v in dated)  # none of the old date


def test_a_rejected_match_stays_rejected_after_a_rebuild_and_undo_takes_it_back(sandbox: Any, db_url: str) -> None:
    config, engine = _synced(sandbox, db_url)
    person = person_of(engine, "pa", _particle_id(engine))
    patient = rows(engine, "SELECT id FROM patient WHERE person_id = :p AND source = 'pa'", p=person)[0]["id"]
    link_id = rows(engine, "SELECT id FROM identity_link WHERE patient_id = :p AND person_id = :q", p=patient, q=person)
    decided = decide_manually(engine, config.identity, link_id[0]["id"], accept=False)
    assert decided.status == "no_match"
    alone = rows(engine, "SELECT person_id FROM patient WHERE id = :p", p=patient)[0]["person_id"]
    assert alone != person
    _rebuild(engine, config)
    assert rows(engine, "SELECT person_id FROM patient WHERE id = :p", p=patient)[0]["person_id"] == alone
    assert count(engine, "identity_link", "id = :i AND origin = 'manual' AND status = 'no_match'", i=link_id[0]["id"])
    undo(engine, config.identity, link_id[0]["id"])
    assert rows(engine, "SELECT person_id FROM patient WHERE id = :p", p=patient)[0]["person_id"] == person
    manual = "SELECT change FROM identity_history WHERE origin = 'manual' ORDER BY id"
    changes = [r["change"] for r in rows(engine, manual)]
    assert changes == ["manual_reject", "manual_undone"]


def _rebuild(engine: Any, config: Any) -> None:
    """What ``link --rebuild`` does."""
    with engine.begin() as conn:
        store.queue_all(conn, dt.datetime.now(dt.UTC))
    link_pending(engine, config.identity)


def _particle_id(engine: Any) -> str:
    return str(rows(engine, "SELECT min(id_value) AS v FROM crosswalk WHERE source = 'pa'")[0]["v"])


def test_accepting_a_possible_match_moves_the_patient_even_into_a_person_of_its_own_source(
    sandbox: Any, sqlite_url: str
) -> None:
    config, engine = _synced(sandbox, sqlite_url)
    first, second = (r["id_value"] for r in rows(engine, "SELECT id_value FROM crosswalk WHERE source = 'ga' LIMIT 2"))
    a, b = person_of(engine, "ga", first), person_of(engine, "ga", second)
    patient = rows(engine, "SELECT id FROM patient WHERE person_id = :p AND source = 'ga'", p=a)[0]["id"]
    with engine.begin() as conn:  # a possible match as a reviewer would find it
        conn.execute(
            text(
                "INSERT INTO identity_link (patient_id, person_id, status, origin, score, decided_at) "
                "VALUES (:p, :q, 'possible_match', 'auto', 0.7, CURRENT_TIMESTAMP)"
            ),
            {"p": patient, "q": b},
        )
    link_id = rows(engine, "SELECT id FROM identity_link WHERE patient_id = :p AND person_id = :q", p=patient, q=b)
    decide_manually(engine, config.identity, link_id[0]["id"], accept=True)
    assert rows(engine, "SELECT person_id FROM patient WHERE id = :p", p=patient)[0]["person_id"] == b
    assert count(engine, "patient", "person_id = :q AND source = 'ga'", q=b) == 2  # a person put it there
    # A rebuild keeps it: manual decisions are never overwritten.
    _rebuild(engine, config)
    assert rows(engine, "SELECT person_id FROM patient WHERE id = :p", p=patient)[0]["person_id"] == b


def test_a_crash_during_linking_loses_and_duplicates_nothing(
    sandbox: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.reset(patients=PEOPLE, medics=5, seed=7)
    config = make_config(db_url, _sources(sandbox))
    engine = engine_for(config)
    calls = {"n": 0}
    real = store.record_history

    def killed_in_the_second_link_batch(conn: Any, changes: list[dict[str, Any]]) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second stream's commit, linked as it lands
            raise KeyboardInterrupt("the process dies here")
        real(conn, changes)

    monkeypatch.setattr(linking.store, "record_history", killed_in_the_second_link_batch)
    with pytest.raises(KeyboardInterrupt):
        run(config, engine, "sweep")
    # The first stream's patients were linked as its page committed; the second's page committed, but its
    # link batch rolled back: still queued, nobody half-linked.
    assert count(engine, "patient", "person_id IS NOT NULL") == PEOPLE
    assert count(engine, "identity_pending") == count(engine, "patient") - PEOPLE
    assert count(engine, "identity_link", "status = 'match'") == PEOPLE == count(engine, "person")
    monkeypatch.setattr(linking.store, "record_history", real)
    assert all(r.ok for r in run(config, engine, "sweep"))  # run again: it continues and links the rest
    assert count(engine, "person", "deleted_at IS NULL") == PEOPLE
    assert count(engine, "patient", "person_id IS NULL") == 0
    assert count(engine, "identity_pending") == 0
    assert count(engine, "identity_link", "status = 'match'") == 4 * PEOPLE  # one a patient: none twice


def test_the_person_command_shows_every_source_of_a_prescrypto_patient(sandbox: Any, sqlite_url: str) -> None:
    config, engine = _synced(sandbox, sqlite_url)
    uid = rows(engine, "SELECT id_value FROM crosswalk WHERE source = 'rx' AND id_type = 'uid' LIMIT 1")[0]["id_value"]
    view = person_view(engine, find_person(engine, uid))
    assert {p["source"] for p in view["patients"]} == {"rx", "pf", "ga", "pa"}
    path = sandbox_config(sandbox, sqlite_url)
    result = cli("--config", path, "person", uid, env={"COLUMNS": "200"})
    assert result.returncode == 0, result.output
    for id_type in ("uid", "unique_id", "patient_id"):
        assert id_type in result.output
    assert view["person"]["given_name"] not in result.output  # not a terminal, no --show-pii: no names
    shown = cli("--config", path, "person", uid, "--show-pii", env={"COLUMNS": "200"})
    assert view["person"]["given_name"] in shown.output
    missing = cli("--config", path, "person", "no-such-id")
    assert missing.returncode == 1 and "no person" in missing.output
    assert "no-such-id" not in missing.output  # what was looked up may be a patient's file number: not echoed


def sandbox_config(sandbox: Any, db_url: str) -> str:
    return _config_file(config_yaml(db_url, _sources(sandbox)))


_CONFIG_FILES: list[str] = []  # written by _config_file, removed once the module's tests are done


@pytest.fixture(scope="module", autouse=True)
def _remove_config_files() -> Any:
    yield
    for name in _CONFIG_FILES:
        Path(name).unlink(missing_ok=True)


def _config_file(text: str) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    _CONFIG_FILES.append(f.name)
    return f.name


def _readme_query(title: str) -> list[str]:
    """The statements under the README's SQL comment ``-- <title>...``, up to the next comment or blank line."""
    text_ = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text_.split(f"-- {title}", 1)[1].split("\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if not line.strip() or line.startswith("--"):
            break
        lines.append(line)
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def test_the_readme_answers_how_many_people_and_a_patients_ids_in_every_source(sandbox: Any, db_url: str) -> None:
    _, engine = _synced(sandbox, db_url)
    uid = rows(engine, "SELECT id_value FROM crosswalk WHERE source = 'rx' AND id_type = 'uid' LIMIT 1")[0]["id_value"]
    persons, per_source = _readme_query("How many people")
    assert rows(engine, persons) == [{"persons": PEOPLE}]
    counted = {r["source"]: r["patients"] for r in rows(engine, per_source)}
    assert counted == dict.fromkeys(("rx", "pf", "ga", "pa"), PEOPLE)
    [ids] = _readme_query("This Prescrypto patient's ids in every source")
    found = rows(engine, ids.replace("8a11e908-f718-4a31-9cbc-c2067acd9a12", uid))
    assert {r["source"] for r in found} == {"rx", "pf", "ga", "pa"}
    assert {"uid", "unique_id", "patient_id"} <= {r["id_type"] for r in found}


EVIDENCE = {"reason": "below the match threshold", "fields": {"name": {"level": "similar"}}}


def test_link_and_review_from_the_command_line(sandbox: Any, sqlite_url: str) -> None:
    _, engine = _synced(sandbox, sqlite_url)
    path = sandbox_config(sandbox, sqlite_url)
    rebuilt = cli("--config", path, "link", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.output
    assert f"{4 * PEOPLE} live patients queued" in rebuilt.output and f"{PEOPLE} persons hold" in rebuilt.output
    assert count(engine, "person", "deleted_at IS NULL") == PEOPLE  # scoring again changes no membership
    nothing = cli("--config", path, "review", "list")
    assert "no possible matches" in nothing.output
    first, second = (r["id_value"] for r in rows(engine, "SELECT id_value FROM crosswalk WHERE source = 'ga' LIMIT 2"))
    a, b = person_of(engine, "ga", first), person_of(engine, "ga", second)
    patient = rows(engine, "SELECT id FROM patient WHERE person_id = :p AND source = 'ga'", p=a)[0]["id"]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO identity_link (patient_id, person_id, status, origin, score, evidence, decided_at) "
                "VALUES (:p, :q, 'possible_match', 'auto', 0.7, :e, CURRENT_TIMESTAMP)"
            ),
            {
                "p": patient,
                "q": b,
                "e": '{"reason": "below the match threshold", "fields": {"name": {"level": "similar"}}}',
            },
        )
    listed = cli("--config", path, "review", env={"COLUMNS": "200"})
    assert listed.returncode == 0 and "score 0.700" in listed.output and "below the match threshold" in listed.output
    assert "<hidden>" in listed.output  # not a terminal: no names
    given = rows(engine, "SELECT given_name FROM patient WHERE id = :p", p=patient)[0]["given_name"]
    assert given not in listed.output
    assert given in cli("--config", path, "review", "list", "--show-pii", env={"COLUMNS": "200"}).output
    link_id = rows(engine, "SELECT id FROM identity_link WHERE status = 'possible_match'")[0]["id"]
    accepted = cli("--config", path, "review", "accept", str(link_id))
    assert accepted.returncode == 0 and "match" in accepted.output
    assert person_of(engine, "ga", first) == b
    undone = cli("--config", path, "review", "undo", str(link_id))
    assert undone.returncode == 0 and person_of(engine, "ga", first) != b
    missing = cli("--config", path, "review", "reject", "999999")
    assert missing.returncode == 2 and "no link 999999" in missing.output
    trained = cli("--config", path, "link", "--train")
    assert trained.returncode == 0 and "match model version 1 trained" in trained.output


def _possible(engine: Any, patient: str, person: str, score: float, name_level: str) -> None:
    evidence = f'{{"reason": "below the match threshold", "fields": {{"name": {{"level": "{name_level}"}}}}}}'
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO identity_link (patient_id, person_id, status, origin, score, evidence, decided_at) "
                "VALUES (:p, :q, 'possible_match', 'auto', :s, :e, CURRENT_TIMESTAMP)"
            ),
            {"p": patient, "q": person, "s": score, "e": evidence},
        )


def test_bulk_review_by_band_and_pattern_with_a_dry_run_and_an_undo(sandbox: Any, db_url: str) -> None:
    _, engine = _synced(sandbox, db_url)
    path = sandbox_config(sandbox, db_url)
    ga = [r["id"] for r in rows(engine, "SELECT id, person_id FROM patient WHERE source = 'ga' ORDER BY id LIMIT 4")]
    persons = [rows(engine, "SELECT person_id FROM patient WHERE id = :p", p=p)[0]["person_id"] for p in ga]
    _possible(engine, ga[0], persons[1], 0.62, "similar")
    _possible(engine, ga[1], persons[2], 0.81, "similar")
    _possible(engine, ga[2], persons[3], 0.85, "exact")
    _possible(engine, ga[3], persons[0], 0.97, "similar")
    history = count(engine, "identity_history")

    def invoke(*args: str) -> Any:
        return cli("--config", path, "review", *args)

    dry = invoke("reject", "--band", "0.7..0.9", "--dry-run")
    assert dry.returncode == 0 and "would reject 2 possible matches" in dry.output, dry.output
    assert (
        count(engine, "identity_link", "status = 'possible_match'") == 4
        and count(engine, "identity_history") == history
    )

    rejected = invoke("reject", "--band", "0.5..0.9", "--pattern", "name=similar")
    assert rejected.returncode == 0 and "rejected 2 possible matches" in rejected.output, rejected.output
    batch = rejected.output.split("batch ")[1].split()[0]
    decided = rows(
        engine, "SELECT patient_id, status, origin FROM identity_link WHERE origin = 'manual' ORDER BY score"
    )
    assert [(r["patient_id"], r["status"]) for r in decided] == [(ga[0], "no_match"), (ga[1], "no_match")]
    assert count(engine, "identity_history", f"batch = '{batch}' AND change = 'manual_reject'") == 2

    undone = invoke("undo", "--bulk", batch)
    assert undone.returncode == 0 and "undid 2 decisions" in undone.output, undone.output
    assert count(engine, "identity_link", "origin = 'manual'") == 0
    assert count(engine, "identity_history", f"batch = '{batch}' AND change = 'manual_undone'") == 2
    assert invoke("undo", "--bulk", batch).output.count("undid 0 decisions") == 1  # nothing left in force

    accepted = invoke("accept", "--band", "0.95..1")
    assert accepted.returncode == 0 and "accepted 1 possible matches" in accepted.output, accepted.output
    assert rows(engine, "SELECT person_id FROM patient WHERE id = :p", p=ga[3])[0]["person_id"] == persons[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reject", "--band", "0.9..0.5"], "LOW first"),
        (["reject", "--band", "high"], "expected LOW..HIGH"),
        (["accept", "--pattern", "name=twin"], "name has no level 'twin'"),
        (["accept", "--pattern", "shoe=exact"], "no comparison 'shoe'"),
        (["accept"], "give a link ID, or --band"),
        (["accept", "3", "--dry-run"], "--dry-run is for a bulk decision"),
        (["undo", "--bulk", "bulk-none"], "no bulk decision bulk-none"),
    ],
)
def test_bulk_review_refuses_what_it_cannot_do(sandbox: Any, sqlite_url: str, args: list[str], message: str) -> None:
    from pipeline.storage.db import migrate, open_engine

    migrate(open_engine(sqlite_url))
    result = cli("--config", sandbox_config(sandbox, sqlite_url), "review", *args)
    assert result.returncode == 2 and message in result.output, result.output


def test_link_train_learns_from_review_decisions_and_prints_what_they_estimate(sandbox: Any, sqlite_url: str) -> None:
    _, engine = _synced(sandbox, sqlite_url)
    path = sandbox_config(sandbox, sqlite_url)
    untaught = cli("--config", path, "link", "--train")
    assert untaught.returncode == 0 and "no review decisions to learn from" in untaught.output, untaught.output
    ga = [r["id"] for r in rows(engine, "SELECT id FROM patient WHERE source = 'ga' ORDER BY id LIMIT 3")]
    persons = [rows(engine, "SELECT person_id FROM patient WHERE id = :p", p=p)[0]["person_id"] for p in ga]
    _possible(engine, ga[0], persons[1], 0.9, "different")
    _possible(engine, ga[1], persons[2], 0.8, "different")
    assert cli("--config", path, "review", "accept", "--band", "0.85..1").returncode == 0
    assert cli("--config", path, "review", "reject", "--band", "0..0.85").returncode == 0
    taught = cli("--config", path, "link", "--train")
    assert taught.returncode == 0, taught.output
    # Two strangers' records: the model links neither, so the accepted one is a miss and nothing is linked.
    assert "1 accepted and 1 rejected review decisions" in taught.output
    assert "precision n/a, recall 0.000" in taught.output


def _one_source(sandbox: Any, db_url: str, n: int) -> tuple[Any, str, list[str]]:
    """The gauges patients alone, swept and linked: every patient a person of its own, so moving one empties
    its person. Returns the engine, a config file and the first ``n`` patient ids."""
    sources = {"ga": gauges_source(sandbox, streams=["patients"], page_size=100)}
    _, engine = swept(sandbox, db_url, sources, patients=PEOPLE, medics=5, seed=7)
    ids = [r["id"] for r in rows(engine, f"SELECT id FROM patient WHERE source = 'ga' ORDER BY id LIMIT {n}")]
    return engine, _config_file(config_yaml(db_url, sources)), ids


def _person(engine: Any, patient: str) -> str:
    return str(rows(engine, "SELECT person_id FROM patient WHERE id = :p", p=patient)[0]["person_id"])


def test_an_accepted_pair_stays_one_person_asked_either_way_round_and_through_a_rebuild(
    sandbox: Any, sqlite_url: str
) -> None:
    engine, path, (a, b, c, d) = _one_source(sandbox, sqlite_url, 4)

    def person(patient: str) -> str:
        return _person(engine, patient)

    # Two strangers offered to each other both ways round: accepting the band joins them, not swaps them.
    _possible(engine, a, person(b), 0.9, "different")
    _possible(engine, b, person(a), 0.9, "different")
    bulk = cli("--config", path, "review", "accept", "--band", "0.8..1")
    assert bulk.returncode == 0 and "accepted 1 possible matches; 1 skipped" in bulk.output, bulk.output
    assert person(a) == person(b)
    # One accepted by hand, its way round; the other way round points at a person now gone, and is cleared.
    gone = person(c)
    _possible(engine, c, person(d), 0.9, "different")
    _possible(engine, d, gone, 0.9, "different")
    link_id = rows(engine, "SELECT id FROM identity_link WHERE patient_id = :p AND status = 'possible_match'", p=c)
    assert cli("--config", path, "review", "accept", str(link_id[0]["id"])).returncode == 0
    assert person(c) == person(d)
    assert count(engine, "identity_link", f"person_id = '{gone}' AND status = 'possible_match'") == 0
    assert count(engine, "identity_history", f"person_id = '{gone}' AND change = 'possible_match_cleared'") == 1
    # Scoring everyone again parts neither pair: a steward said they are one person.
    assert cli("--config", path, "link", "--rebuild").returncode == 0
    assert person(a) == person(b) and person(c) == person(d)


def test_a_page_and_the_links_of_its_patients_commit_together(
    sandbox: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from structlog.testing import capture_logs

    sandbox.reset(patients=PEOPLE, medics=5, seed=7)
    sources = {"ga": gauges_source(sandbox, streams=["patients"], page_size=100)}
    config = make_config(db_url, sources)
    engine = engine_for(config)
    real = store.record_history

    def dies(conn: Any, changes: list[dict[str, Any]]) -> None:
        raise KeyboardInterrupt("the process dies while linking the page")

    monkeypatch.setattr(linking.store, "record_history", dies)
    with pytest.raises(KeyboardInterrupt):
        run(config, engine, "sweep")
    # Killed inside the page's transaction: neither its records nor any link landed.
    assert count(engine, "patient") == count(engine, "source_record") == count(engine, "person") == 0

    calls = {"n": 0}

    def fails_once(conn: Any, changes: list[dict[str, Any]]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a linking bug")
        real(conn, changes)

    monkeypatch.setattr(linking.store, "record_history", fails_once)
    with capture_logs() as logged:
        results = run(config, engine, "sweep")
    # A linking failure costs the page nothing: it lands, its patients stay queued, the run's last pass links them.
    assert all(r.ok for r in results)
    assert any(e["event"] == "linking crashed: the patients stay queued" for e in logged)
    assert count(engine, "patient") == PEOPLE == count(engine, "person", "deleted_at IS NULL")
    assert count(engine, "patient", "person_id IS NULL") == 0 and count(engine, "identity_pending") == 0


def test_bulk_review_leaves_hand_decisions_and_chains_alone_and_a_rejection_parts_a_confirmed_pair(
    sandbox: Any, sqlite_url: str
) -> None:
    engine, path, (a, b, c, d, e) = _one_source(sandbox, sqlite_url, 5)

    def person(patient: str) -> str:
        return _person(engine, patient)

    def link_of(patient: str, status: str) -> int:
        found = rows(engine, "SELECT id FROM identity_link WHERE patient_id = :p AND status = :s", p=patient, s=status)
        return int(found[0]["id"])

    def review(*args: str) -> Any:
        result = cli("--config", path, "review", *args)
        assert result.returncode == 0, result.output
        return result

    _possible(engine, a, person(b), 0.9, "different")
    review("accept", str(link_of(a, "possible_match")))
    assert person(a) == person(b)
    # A hand decision stands: a bulk acceptance of another person for the same patient skips it.
    _possible(engine, a, person(c), 0.95, "different")
    assert "accepted 0 possible matches; 1 skipped" in review("accept", "--band", "0.9..1").output
    assert person(a) == person(b)
    # Accepting another person by hand replaces the first acceptance, and says so in the history.
    review("accept", str(link_of(a, "possible_match")))
    assert person(a) == person(c) and count(engine, "identity_history", "change = 'manual_accept_replaced'") == 1
    # A chain d -> e's person, e -> c's person in one batch would split e's person: one waits.
    _possible(engine, d, person(e), 0.9, "different")
    _possible(engine, e, person(c), 0.89, "different")
    assert "accepted 1 possible matches; 1 skipped" in review("accept", "--band", "0.8..0.95").output
    assert person(d) == person(e) != person(c)
    # c was joined by a steward's acceptance of a; rejecting c's own place there parts c from it.
    review("reject", str(link_of(c, "match")))
    assert person(c) != person(a)


def test_a_namesake_whose_records_arrive_later_settles_an_earlier_undecided_patient(sandbox: Any, db_url: str) -> None:
    """Two Prescrypto patients of one name and birth date who live apart: two people. Particle's record of the
    first has no e-mail, so it matches both persons equally and waits in review; then Particle's record of the
    second arrives and joins the second by its e-mail. The first's Particle record, of the same source with
    another SSN, cannot be the second person now: it is decided again and joins the first. Without that, it
    would wait in review because of the order the records came in."""
    sandbox.reset(patients=0, medics=0)
    sandbox.switches("particle", page_size=10)
    common = {"name": "Carmen Martínez Mora", "date_of_birth": "1956-07-23", "gender": "F", "phone": ""}
    for uid, email, address, zip_code in (
        ("rx-carmen-1", "carmen.m@ejemplo.mx", "Calle Guatemala 523", "72819"),
        ("rx-carmen-2", "carmen.251@zamora.net", "Calle 97 457", "77073"),
    ):
        body = {**common, "uid": uid, "email": email, "address": address, "zip_code": zip_code, "state": "Puebla"}
        assert sandbox.post("/_sandbox/prescrypto/patients", body).status_code == 201
    rx = {"rx": prescrypto_source(sandbox, streams=["patients"])}
    engine = engine_for(make_config(db_url, rx))
    assert all(r.ok for r in run(make_config(db_url, rx), engine, "sweep"))
    first, second = person_of(engine, "rx", "rx-carmen-1", "uid"), person_of(engine, "rx", "rx-carmen-2", "uid")
    assert first != second

    particle = {"given_name": "Carmen", "family_name": "Martínez Mora", "date_of_birth": "1956-07-23"}
    # A page's patients are linked in the order of their ids: pt-carmen-a's before pt-carmen-b's.
    assert canonical_id("pa", "patient", "pt-carmen-a") < canonical_id("pa", "patient", "pt-carmen-b")
    for patient_id, extra in (
        ("pt-carmen-a", {"ssn": "123-45-6789", "address_lines": ["2241 Pine St"], "postal_code": "62685"}),
        ("pt-carmen-b", {"ssn": "987-65-4321", "email": "carmen.251@zamora.net", "address_lines": ["4826 Oak St"]}),
    ):
        body = {**particle, **extra, "patient_id": patient_id, "gender": "FEMALE", "address_city": "Reno"}
        assert sandbox.post("/_sandbox/particle/patients", body).status_code == 201
    both = make_config(db_url, {**rx, "pa": particle_source(sandbox, concurrency=1)})
    assert all(r.ok for r in run(both, engine, "sweep"))
    assert person_of(engine, "pa", "pt-carmen-b") == second
    assert person_of(engine, "pa", "pt-carmen-a") == first
    assert count(engine, "identity_link", "status = 'possible_match'") == 0
