"""A link pass re-keying a patient while a page rewrites it, on PostgreSQL (two writers at once): whichever lands
last, the patient's match keys are exactly the ones its key list names, so none is left that nothing deletes."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text

from pipeline.config import IdentityConfig
from pipeline.identity.keys import match_keys
from pipeline.identity.profile import profile
from pipeline.storage import identity as store
from pipeline.storage import load
from pipeline.storage.db import open_engine
from pipeline.storage.tables import Patient, table_of
from pipeline.sync.linking import link_pending

pytestmark = pytest.mark.postgres

P = "p-rekeyed"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _patient(family: str, born: str) -> dict[str, Any]:
    return {
        "id": P,
        "given_name": "Ana",
        "family_name": family,
        "birth_date": dt.date.fromisoformat(born),
        "sex": "female",
        "active": True,
        "source": "rx",
        "created_at": NOW,
        "updated_at": NOW,
    }


def _page(row: dict[str, Any]) -> load.PageRows:
    """What a page rewriting the patient writes: its row, and its keys in place of the stored ones."""
    match_keys_rows, patient_keys = load.key_rows({P: match_keys(profile(row, "rx"))})
    return load.PageRows(
        source="rx",
        stream="patients",
        canonical={"patient": [row]},
        described={"patient": [P]},
        match_keys=match_keys_rows,
        patient_keys=patient_keys,
    )


def _blocked_or_done(engine: Engine, page: threading.Thread, deadline: float) -> bool:
    """Whether the page's transaction waits on a lock (False: it has finished). Asked of the server, not timed."""
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            if not page.is_alive():
                return False
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            if waiting:
                return True
            conn.rollback()  # pg_stat_activity holds still within a transaction: the next look takes a new one
            time.sleep(0.02)
    raise AssertionError("the page neither finished nor waited on a lock")


def test_a_page_rewriting_a_patient_while_a_link_pass_rekeys_it_leaves_no_orphaned_keys(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = open_engine(pg_url)
    with engine.begin() as conn:
        # Stored before its key list existed (as after an upgrade to new keys): no keys, queued to derive them.
        load.upsert(conn, table_of(Patient), [_patient("Ruiz", "1990-05-01")])
        load.queue(conn, [P], NOW, rekey=True)
    page_error: list[BaseException] = []

    def page() -> None:  # another process's page, in its own transaction
        try:
            with engine.begin() as conn:
                load.write(conn, _page(_patient("Zamora", "1985-11-30")))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            page_error.append(exc)

    original: Callable[..., None] = store.write_keys
    writer = threading.Thread(target=page)

    def page_lands_between(conn: Any, *args: Any) -> None:
        # The link pass has deleted the stored keys (none) and is about to write its own: the page runs now.
        writer.start()
        page_waits = _blocked_or_done(engine, writer, time.monotonic() + 60)
        original(conn, *args)
        assert page_waits or not writer.is_alive()

    monkeypatch.setattr(store, "write_keys", page_lands_between)
    link_pending(engine, IdentityConfig())
    writer.join(60)
    assert not writer.is_alive() and not page_error

    with engine.connect() as conn:
        query = text("SELECT key_type, key_value FROM match_key WHERE patient_id = :p")
        stored = {tuple(r) for r in conn.execute(query, {"p": P})}
        listed = {tuple(k) for k in load.stored_keys(conn, [P])[P]}
        family = conn.execute(text("SELECT family_name FROM patient WHERE id = :p"), {"p": P}).scalar_one()
    engine.dispose()
    expected = {tuple(k) for k in match_keys(profile(_patient("Zamora", "1985-11-30"), "rx"))}
    assert family == "Zamora"
    assert stored == listed == expected  # the page landed last; its keys replaced the pass's, none left behind
