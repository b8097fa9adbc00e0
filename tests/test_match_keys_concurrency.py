"""Two transactions replacing one patient's match keys at once, as a link pass re-keying a patient and another
process's page rewriting it can on PostgreSQL: whichever commits last, ``match_key`` holds its keys and
nothing else, as ``patient_keys`` does (a key left behind would be found by nothing ever again)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from pipeline.storage.db import open_engine
from pipeline.storage.identity import replace_keys

pytestmark = pytest.mark.postgres


def _keys(tag: str) -> list[tuple[str, str]]:
    return [("email", f"ana.{tag}@example.mx"), ("phone", f"+52555000{tag}")]


def test_a_page_rewriting_a_patient_while_a_link_pass_rekeys_it_leaves_no_stray_key(pg_url: str) -> None:
    engine = open_engine(pg_url)
    with engine.begin() as conn:
        replace_keys(conn, {"p1": _keys("0000")})
    rekeying = engine.connect()
    rekeying.begin()
    replace_keys(rekeying, {"p1": _keys("1111")})  # not committed yet
    backend: list[int] = []

    def page() -> None:
        with engine.begin() as conn:
            backend.append(conn.connection.driver_connection.info.backend_pid)  # type: ignore[union-attr]
            replace_keys(conn, {"p1": _keys("2222")})

    thread = threading.Thread(target=page)
    thread.start()
    deadline = time.monotonic() + 30
    with engine.connect() as watch:  # until the page waits for the link pass's lock: a state, not a time
        waiting = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"
        while time.monotonic() < deadline and not (
            backend and watch.execute(text(waiting), {"pid": backend[0]}).scalar()
        ):
            time.sleep(0.02)
    rekeying.commit()
    rekeying.close()
    thread.join(timeout=30)
    with engine.connect() as conn:
        held = set(conn.execute(text("SELECT key_type, key_value FROM match_key WHERE patient_id = 'p1'")).all())
        listed = conn.execute(text("SELECT match_keys FROM patient_keys WHERE patient_id = 'p1'")).scalar()
    engine.dispose()
    assert held == set(_keys("2222"))
    assert "2222" in str(listed) and "1111" not in str(listed)
