"""The steward's console over real HTTP, serving the demo's database (SQLite and PostgreSQL): its security model
(headers, CSRF, the token, the bind rule, logs without patient data) and decisions that are the CLI's own."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from sqlalchemy import text

from pipeline.app.web.guard import check_bind
from tests.console_support import (
    HOSTILE,
    OPERATOR,
    TOKEN,
    Served,
    csrf_of,
    demo_settings,
    identity_state,
    open_reviews,
)
from tests.support import cli, config_yaml, prescrypto_source

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.xdist_group("demo")
pytest_plugins = ("tests.console_support",)  # the demo database, served

HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def _pages(served: Served) -> list[str]:
    review = open_reviews(served.engine)[0]
    return [
        "/review",
        "/review?source=demo-particle&low=0.5&high=1&page=1",
        f"/review/{review['id']}",
        f"/person/{review['person_id']}",
        f"/person/{review['patient_id']}",
        "/streams",
        "/review/bulk?action=reject&low=0&high=1&name=exact",
    ]


def test_every_response_carries_the_security_headers(served: Served) -> None:
    with served.client() as client:
        for path in [*_pages(served), "/", "/static/console.css", "/review/999999", "/nowhere"]:
            response = client.get(path)
            assert response.status_code in (200, 303, 404), path
            for name, value in HEADERS.items():
                assert response.headers[name] == value, (path, name)
            policy = response.headers["content-security-policy"]
            assert "unsafe-inline" not in policy and "script-src 'self'" in policy, path
            assert "frame-ancestors 'none'" in policy


def test_gets_change_nothing(served: Served) -> None:
    before = identity_state(served.engine)
    with served.client() as client:
        for path in _pages(served):
            assert client.get(path).status_code == 200, path
    assert identity_state(served.engine) == before


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(served: Served) -> None:
    review = open_reviews(served.engine)[0]
    before = identity_state(served.engine)
    with served.client() as client:
        page = client.get(f"/review/{review['id']}").text
        assert client.post(f"/links/{review['id']}/accept", data={}).status_code == 403
        assert client.post(f"/links/{review['id']}/accept", data={"csrf": "0" * 64}).status_code == 403
    with served.client() as other:  # another browser's session: its token is not this one's
        other.get("/review")
        assert other.post(f"/links/{review['id']}/accept", data={"csrf": csrf_of(page)}).status_code == 403
    assert identity_state(served.engine) == before


def test_accept_and_undo_are_the_cli_decisions_with_the_operator(served: Served) -> None:
    review = open_reviews(served.engine)[0]
    with served.client() as client:
        csrf = csrf_of(client.get(f"/review/{review['id']}").text)
        accepted = client.post(f"/links/{review['id']}/accept", data={"csrf": csrf})
        assert accepted.status_code == 303 and accepted.headers["location"] == f"/person/{review['patient_id']}"
        person = client.get(accepted.headers["location"]).text
        assert "match, manual" in person and OPERATOR in person
        with served.engine.connect() as conn:
            moved = conn.execute(text("SELECT person_id FROM patient WHERE id = :p"), {"p": review["patient_id"]})
            assert moved.scalar() == review["person_id"]
            change = conn.execute(
                text("SELECT operator, origin FROM identity_history WHERE change = 'manual_accept'")
            ).one()
        assert tuple(change) == (OPERATOR, "manual")
        assert review["id"] not in [r["id"] for r in open_reviews(served.engine)]
        undone = client.post(f"/links/{review['id']}/undo", data={"csrf": csrf})
        assert undone.status_code == 303
    with served.engine.connect() as conn:
        history = [
            tuple(r)
            for r in conn.execute(
                text("SELECT change, operator FROM identity_history WHERE origin = 'manual' ORDER BY id")
            )
        ]
    assert history == [("manual_accept", OPERATOR), ("manual_undone", OPERATOR)]


def test_a_decision_in_the_cli_shows_in_the_console_and_the_reverse(served: Served, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"database": {"url": served.config.database.url}, "sources": _sources(served)}))
    first, second = open_reviews(served.engine)[:2]
    ran = cli("--config", str(config), "review", "reject", str(first["id"]), "--operator", "Bo Clerk")
    assert ran.returncode == 0, ran.output
    with served.client() as client:
        queue = client.get("/review").text
        assert f'/review/{first["id"]}"' not in queue and f'/review/{second["id"]}"' in queue
        compare = client.get(f"/review/{first['id']}").text
        assert "no match" in compare and "decided by a steward" in compare and "Undo this decision" in compare
        client.post(f"/links/{second['id']}/reject", data={"csrf": csrf_of(compare)})
    listed = cli("--config", str(config), "review", "list", "--json")
    assert [item["id"] for item in json.loads(listed.stdout)] == [r["id"] for r in open_reviews(served.engine)]
    assert second["id"] not in [item["id"] for item in json.loads(listed.stdout)]
    with served.engine.connect() as conn:
        query = text("SELECT reason, operator FROM identity_history WHERE change = 'manual_reject'")
        who = {reason: operator for reason, operator in conn.execute(query)}
    assert who == {f"link {first['id']}": "Bo Clerk", f"link {second['id']}": OPERATOR}


def _sources(served: Served) -> dict[str, dict[str, str]]:
    return {
        name: {"kind": source.kind, "base_url": str(source.base_url), "token": "unused"}
        for name, source in served.config.sources.items()
    }


def test_bulk_preview_decides_nothing_and_the_decision_takes_only_what_it_showed(served: Served) -> None:
    lowest = open_reviews(served.engine)[-1]
    with served.engine.begin() as conn:  # one possible match below the others, whatever the demo's own scores
        conn.execute(text("UPDATE identity_link SET score = 0.5 WHERE id = :i"), {"i": lowest["id"]})
    reviews = open_reviews(served.engine)
    lowest = reviews[-1]
    low = math.floor(reviews[-2]["score"] * 1000) / 1000  # every review but the lowest
    assert lowest["score"] < low
    query = {"action": "reject", "low": str(low), "high": "1"}
    before = identity_state(served.engine)
    with served.client() as client:
        preview = client.get("/review/bulk", params=query)
        shown = len(reviews) - 1
        assert preview.status_code == 200 and f"Preview: reject {shown} possible matches" in preview.text
        assert identity_state(served.engine) == before
        # Meanwhile a link rises into the band (a sync scored it again): the decision leaves it alone.
        with served.engine.begin() as conn:
            conn.execute(text("UPDATE identity_link SET score = 0.999 WHERE id = :i"), {"i": lowest["id"]})
        links = preview.text.split('name="links" value="')[1].split('"')[0]
        done = client.post("/review/bulk", data={**query, "links": links, "csrf": csrf_of(preview.text)})
        assert done.status_code == 200 and f"Rejected {shown} possible matches" in done.text
        assert [r["id"] for r in open_reviews(served.engine)] == [lowest["id"]]
        batch = done.text.split('name="batch" value="')[1].split('"')[0]
        undone = client.post("/review/bulk/undo", data={"batch": batch, "csrf": csrf_of(done.text)})
        assert undone.status_code == 200 and f"Undid {shown} decisions" in undone.text
    # Undone, the patients are decided again: the same possible matches, as new links.
    pairs = {(r["patient_id"], r["person_id"]) for r in reviews}
    assert {(r["patient_id"], r["person_id"]) for r in open_reviews(served.engine)} == pairs


def test_bad_filters_are_a_clear_400(served: Served) -> None:
    with served.client() as client:
        for query, message in (("low=2", "low: a score from 0 to 1"), ("low=0.9&high=0.1", "low: above high"),
                               ("page=0", "page: a page number"), ("low=x", "low: not a number")):  # fmt: skip
            response = client.get(f"/review?{query}")
            assert response.status_code == 400 and message in response.text, query
        assert "action: accept or reject" in client.get("/review/bulk?action=drop").text
        assert client.get("/review/bulk?action=reject&name=nonsense").status_code == 400


def test_a_hostile_record_is_text(served: Served) -> None:
    review = open_reviews(served.engine)[0]
    with served.engine.begin() as conn:
        conn.execute(
            text("UPDATE patient SET given_name = :n WHERE id = :p"), {"n": HOSTILE, "p": review["patient_id"]}
        )
    with served.client() as client:
        for path in (f"/review/{review['id']}", "/review", f"/person/{review['patient_id']}"):
            page = client.get(path).text
            assert "<script>alert" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;alert(&#34;given&#34;)&lt;/script&gt;" in client.get(f"/review/{review['id']}").text


def test_a_token_guards_every_page_and_the_session_never_holds_it(served_with_token: Served) -> None:
    served = served_with_token
    review = open_reviews(served.engine)[0]
    with served.client() as client:
        assert client.get("/review").headers["location"] == "/login"
        assert client.post(f"/links/{review['id']}/accept").status_code == 401
        assert client.get("/review", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.get("/review", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 303
        login = client.get("/login").text
        wrong = client.post("/login", data={"csrf": csrf_of(login), "operator": "Cy", "token": "nope"})
        assert wrong.status_code == 401 and "wrong token" in wrong.text
        signed = client.post("/login", data={"csrf": csrf_of(login), "operator": "Cy Steward", "token": TOKEN})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("samesite", "SameSite")
        assert TOKEN not in cookie
        page = client.get(f"/review/{review['id']}")
        assert page.status_code == 200
        client.post(f"/links/{review['id']}/reject", data={"csrf": csrf_of(page.text)})
    with served.engine.connect() as conn:
        assert (
            conn.execute(text("SELECT operator FROM identity_history WHERE change = 'manual_reject'")).scalar()
            == "Cy Steward"
        )


def test_the_access_log_names_pages_never_patients(served: Served) -> None:
    review = open_reviews(served.engine)[0]
    with served.engine.connect() as conn:
        names = conn.execute(
            text("SELECT given_name, family_name FROM patient WHERE id = :p"), {"p": review["patient_id"]}
        ).one()
    with structlog.testing.capture_logs() as logs, served.client() as client:
        for path in _pages(served):
            client.get(path)
    requests = [entry for entry in logs if entry["event"] == "console request"]
    assert len(requests) == len(_pages(served))
    assert {entry["page"] for entry in requests} >= {"queue", "compare", "person", "streams", "bulk_preview"}
    shown = json.dumps(logs, default=str)
    for secret in (*names, review["patient_id"], review["person_id"], f"/review/{review['id']}"):
        assert secret not in shown


def test_a_non_loopback_bind_without_a_token_is_refused(tmp_path: Path) -> None:
    from canonical.errors import ConfigError

    with pytest.raises(ConfigError, match="console.token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", TOKEN)  # allowed with a token
    check_bind("::1", None)
    config = tmp_path / "config.yaml"
    source = {"kind": "prescrypto", "base_url": "http://127.0.0.1:1", "token": "t"}
    config.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path}/x.db"}, "sources": {"rx": source}}))
    ran = cli("--config", str(config), "console", "--host", "0.0.0.0", "--port", "0")
    assert ran.returncode == 2 and "console.token" in ran.stderr


def test_a_port_in_use_is_a_clear_error(served: Served) -> None:
    from canonical.errors import ServeError
    from pipeline.app.web.serve import ConsoleServer

    port = int(served.base.rsplit(":", 1)[1])
    with pytest.raises(ServeError, match=f"cannot listen on 127.0.0.1:{port}"):
        ConsoleServer(served.config, served.engine, "127.0.0.1", port)


def test_the_daemon_serves_the_console_beside_its_jobs(sandbox: Any, tmp_path: Path, sqlite_url: str) -> None:
    from tests.test_metrics_e2e import free_port, get, wait_for

    config = tmp_path / "config.yaml"
    config.write_text(
        config_yaml(sqlite_url, {"rx": prescrypto_source(sandbox, streams=["patients"], schedule="0 0 1 1 *")})
    )
    port = free_port()
    command = [sys.executable, "-m", "pipeline", "--config", str(config), "daemon", "--console-port", str(port)]
    refused = subprocess.run([*command, "--console-host", "0.0.0.0"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "console.token" in refused.stderr
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:

        def first_run_shown() -> str | None:
            response = get(f"http://127.0.0.1:{port}/streams")
            return response.text if response is not None and "succeeded · incremental" in response.text else None

        streams = wait_for(first_run_shown, "the first sync on the console's streams page")
        assert ">230<" in streams.replace(" ", "")  # the stream's live records
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert '"event": "console request"' in err and '"page": "streams"' in err


def test_the_streams_page_lists_the_quarantine_and_retries_it(served: Served) -> None:
    """One quarantined record that maps now (a patient with a new uid) and one that still does not."""
    with served.engine.begin() as conn:
        stored = conn.execute(
            text("SELECT payload FROM source_record WHERE source = 'demo-prescrypto' AND stream = 'patients' LIMIT 1")
        ).scalar_one()
        good = {**(json.loads(stored) if isinstance(stored, str) else stored), "id": 990001, "uid": str(uuid.uuid4())}
        bad = {**good, "id": 990002, "uid": str(uuid.uuid4()), "date_of_birth": "not a date"}
        for payload in (good, bad):
            conn.execute(
                text(
                    "INSERT INTO quarantine (source, stream, source_key, reason, payload, payload_hash, run_id, "
                    "created_at) VALUES ('demo-prescrypto', 'patients', :key, 'date_of_birth: not a date', "
                    ":payload, 'x', NULL, :now)"
                ),
                {"key": payload["uid"], "payload": json.dumps(payload), "now": dt.datetime.now(dt.UTC)},
            )
    with served.client() as client:
        page = client.get("/streams").text
        assert "Quarantine <small>2</small>" in page and "date_of_birth: not a date" in page
        retried = client.post("/quarantine/retry", data={"csrf": csrf_of(page)})
    assert retried.status_code == 200
    assert "demo-prescrypto/patients: 1 of 2 landed" in retried.text and "Quarantine <small>1</small>" in retried.text
    with served.engine.connect() as conn:
        landed = conn.execute(text("SELECT count(*) FROM crosswalk WHERE id_value = :uid"), {"uid": good["uid"]})
        assert landed.scalar() == 1


def test_a_request_addressed_to_another_name_is_refused_without_a_token(served: Served) -> None:
    """DNS rebinding: a page of another site whose name resolves to 127.0.0.1 must get nothing."""
    with served.client() as client:
        for host in ("attacker.example", f"attacker.example:{served.base.rsplit(':', 1)[1]}", "127.0.0.2.nip.io"):
            response = client.get("/review", headers={"Host": host})
            assert response.status_code == 400 and "csrf" not in response.text, host
        assert client.get("/review", headers={"Host": "localhost"}).status_code == 200
        assert client.get("/review/", headers={"Host": "evil.example"}).status_code == 400  # no redirect built from it


def test_a_post_from_another_site_is_refused_even_with_the_csrf_token(served: Served) -> None:
    review = open_reviews(served.engine)[0]
    before = identity_state(served.engine)
    with served.client() as client:
        csrf = csrf_of(client.get(f"/review/{review['id']}").text)
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            refused = client.post(f"/links/{review['id']}/accept", data={"csrf": csrf}, headers=headers)
            assert refused.status_code == 403, headers
        assert identity_state(served.engine) == before
        own = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}  # what a browser sends under no-referrer
        assert client.post(f"/links/{review['id']}/accept", data={"csrf": csrf}, headers=own).status_code == 303


def test_out_of_range_numbers_are_a_clear_refusal(served: Served) -> None:
    with served.client() as client:
        for page in ("99999999999999999999", "²", "1" * 5000):
            response = client.get("/review", params={"page": page})
            assert response.status_code == 400 and "page: a page number" in response.text
        assert client.get("/review/99999999999999999999").status_code == 404
        preview = client.get("/review/bulk", params={"action": "reject", "csrf": "x", "evil": "1"}).text
        form = preview.split('action="/review/bulk"')[1].split("</form>")[0]
        assert form.count('name="csrf"') == 1 and 'name="evil"' not in form


def test_only_signed_in_sessions_are_kept_so_anonymous_requests_crowd_nobody_out(
    served_with_token: Served,
) -> None:
    from pipeline.app.web.guard import IDLE_SECONDS, SESSIONS, Guard

    guard = Guard(TOKEN, "local")
    sid, anonymous, _ = guard.session(None, 0.0)
    signed = guard.sign_in(sid, TOKEN, "Ana", 0.0)
    assert signed is not None and not anonymous.signed_in
    for _ in range(SESSIONS * 3):
        assert not guard.session(None, 1.0)[1].signed_in
    assert guard.session(signed, 2.0)[1].signed_in
    assert not guard.session(signed, 3.0 + IDLE_SECONDS)[1].signed_in  # idle too long: sign in again
    with served_with_token.client() as client:  # before signing in, a POST may carry a login form, no more
        assert client.post("/login", content=b"x" * 100_000, headers={"Content-Type": "text/plain"}).status_code == 413


def test_the_demo_serves_its_database_in_the_console_until_interrupted(tmp_path: Path) -> None:
    from tests.test_metrics_e2e import free_port, get, wait_for

    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    port = free_port()
    command = [sys.executable, "-m", "pipeline", "demo", "--patients", "40", "--console", "--console-port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        streams = wait_for(lambda: (r := get(f"http://127.0.0.1:{port}/streams")) is not None and r.text, "the console")
        assert "demo-prescrypto" in streams and "demo-particle" in streams and "succeeded · sweep" in streams
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err  # Ctrl-C's status, as every command's
    assert "possible matches wait for review" in out and "console on http://127.0.0.1:" in err


def test_a_console_stopped_by_a_signal_ends_as_interrupted_even_when_the_signal_is_not_raised_again(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn shuts down on SIGINT and raises it again; should that second raise be lost, `serve` still ends
    as an interrupt (the command's status 130), not as a clean return (status 0)."""
    import uvicorn

    from pipeline.app.web.serve import serve
    from pipeline.storage.db import open_engine

    def stopped_by_a_signal(server: uvicorn.Server, sockets: Any = None) -> None:
        server.should_exit = True  # as uvicorn's signal handler leaves it, the signal's raise lost

    monkeypatch.setattr(uvicorn.Server, "run", stopped_by_a_signal)
    engine = open_engine(sqlite_url)
    with pytest.raises(KeyboardInterrupt):
        serve(demo_settings(sqlite_url), engine, "127.0.0.1", 0)
    engine.dispose()
