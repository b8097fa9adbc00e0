"""Every response and every listing is bounded: faults staged by the sandbox over real HTTP.

Each bound fails the stream with a clear error while the pages before it stay stored and the cursor stays at
the last good page: a gzip bomb, an endless body, a slowloris, bodies that do not decode, a redirect, a page
larger than asked for, a server that serves one page for every position, next links and tokens too long or
carrying credentials. Memory is measured with tracemalloc's peak, never with wall-clock windows.
"""

from __future__ import annotations

import base64
import gzip
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine
from structlog.testing import capture_logs

from connectors.client import RetryPolicy
from pipeline.storage.cursors import load_cursor
from pipeline.sync.runner import SWEEP, RunResult
from tests.support import (
    GAUGES_AUTH,
    PARTICLE_AUTH,
    PROFILES_AUTH,
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
)

PATIENTS = "/prescrypto/api/v2/patient/"
PROFILES = "/profiles/patients/patients"
PARTICLE = "/particle/api/v1/patients"
GAUGES = "/gauges/v1/patients"
MiB = 1024 * 1024


def sweep(engine: Engine, config: Any, **options: Any) -> RunResult:
    (result,) = run(config, engine, SWEEP, **options)
    return result


def sweep_cursor(engine: Engine, source: str, stream: str = "patients") -> dict[str, Any]:
    """The sweep's position, without the anchor key an offset position carries (the last record's key)."""
    with engine.connect() as conn:
        cursor = load_cursor(conn, source, stream)
    return {k: v for k, v in cursor.get("sweep", {}).items() if k not in ("started_at", "resumed", "anchor")}


def peak_during(action: Callable[[], Any]) -> tuple[Any, int]:
    """What ``action`` returns, and the peak of memory allocated while it ran (every thread)."""
    tracemalloc.start()
    try:
        return action(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def prescrypto(sandbox: Any, sqlite_url: str, **overrides: Any) -> tuple[Engine, Any]:
    config = make_config(sqlite_url, {"rx": prescrypto_source(sandbox, streams=["patients"], **overrides)})
    return engine_for(config), config


def assert_first_page_kept(engine: Engine) -> None:
    """Page 1 (50 patients) stayed stored and the sweep's position is its end, not past it."""
    assert count(engine, "patient") == count(engine, "source_record") == 50
    assert sweep_cursor(engine, "rx") == {"offset": 50}


# --- the size of one response -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"gzip_bomb": 256 * MiB}, id="gzip-bomb"),  # ~260 KB on the wire
        pytest.param({"endless": True}, id="endless-chunked-body"),
    ],
)
def test_a_body_past_max_response_bytes_is_cut_off_with_bounded_memory(sandbox, sqlite_url, fault):
    engine, config = prescrypto(sandbox, sqlite_url, max_response_bytes=MiB)
    sandbox.faults({"path": PATIENTS, "after": 1, "times": None, **fault})
    result, peak = peak_during(lambda: sweep(engine, config))
    assert (result.status, result.error) == (
        "failed",
        "rx/patients: a response is larger than max_response_bytes (1048576 bytes): not read further",
    )
    assert peak < 4 * MiB  # the 1 MiB read, page 1 and the run's own bookkeeping (~2 MiB in all); not 256 MiB
    assert sandbox.fault_counts()[0]["fired"] == 1  # a body error is not retried
    assert_first_page_kept(engine)


def test_a_page_larger_than_max_response_bytes_is_not_parsed(sandbox, sqlite_url):
    # 100,000 tiny records answering limit=50: 1.9 MB of JSON, millions of bytes of Python objects once parsed.
    huge = "[" + ",".join(f'{{"uid": "u{i}"}}' for i in range(100_000)) + "]"
    engine, config = prescrypto(sandbox, sqlite_url, max_response_bytes=256 * 1024)
    sandbox.faults({"path": PATIENTS, "after": 1, "raw": huge})
    result, peak = peak_during(lambda: sweep(engine, config))
    assert result.error == (
        "rx/patients: a response is larger than max_response_bytes (262144 bytes): not read further"
    )
    assert peak < 2 * MiB  # ~1 MiB: the 256 KiB read, page 1 and the run's own bookkeeping
    assert_first_page_kept(engine)


def test_a_page_with_more_records_than_asked_for_fails_the_stream(sandbox, sqlite_url):
    engine, config = prescrypto(sandbox, sqlite_url)
    sandbox.faults({"path": PATIENTS, "after": 1, "body": source_patients(sandbox)[50:170]})
    result = sweep(engine, config)
    assert (result.status, result.error) == (
        "failed",
        "rx/patients: a page holds 120 records, more than the 50 asked for (limit)",
    )
    assert_first_page_kept(engine)


# --- time ---------------------------------------------------------------------------------------------


def test_a_trickling_response_is_abandoned_at_the_deadline_and_retried(sandbox, sqlite_url):
    # A byte every 50 ms never trips the 0.5 s read timeout; page 2 (~35 KB) would take half an hour.
    engine, config = prescrypto(sandbox, sqlite_url, timeout=0.5, deadline=1)
    sandbox.faults({"path": PATIENTS, "after": 1, "times": None, "trickle": 0.05})
    result = sweep(engine, config, retry=RetryPolicy(attempts=2, initial_wait=0.01))
    assert (result.status, result.error) == (
        "failed",
        "rx/patients: gave up after retries: timeout (still arriving after the 1 s deadline)",
    )
    assert sandbox.fault_counts()[0]["fired"] == 2  # retried like a timeout, within the retry budget
    assert_first_page_kept(engine)


def test_a_deadline_timeout_is_retried_and_the_next_attempt_lands(sandbox, sqlite_url):
    engine, config = prescrypto(sandbox, sqlite_url, timeout=0.5, deadline=1)
    sandbox.faults({"path": PATIENTS, "after": 1, "times": 1, "trickle": 0.05})
    result = sweep(engine, config)
    assert (result.status, result.counts.inserted) == ("succeeded", 230)
    assert sandbox.fault_counts()[0]["fired"] == 1


# --- bodies that do not decode, and redirects ---------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


GZIP = {"Content-Encoding": "gzip"}


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        pytest.param(
            {"raw_base64": _b64(b"\x1f\x8b\x08\x00 not gzip at all"), "headers": GZIP},
            "a response: the body is not valid gzip",
            id="bad-gzip",
        ),
        pytest.param(
            {"raw_base64": _b64(gzip.compress(b'[{"uid": "u1"}]')[:-6]), "headers": GZIP},
            "a response: the gzip stream is truncated",
            id="truncated-gzip",
        ),
        pytest.param(
            {"headers": {"Content-Encoding": "br"}},  # on the API's own page
            "a response: its Content-Encoding is not accepted (only gzip and deflate)",
            id="other-encoding",
        ),
        pytest.param({"raw": '[{"uid": "u1"}, oops]'}, "a response is not JSON", id="not-json"),
        pytest.param(
            {"raw": "[" * 100_000 + "]" * 100_000},
            "a response nests too deeply to decode",
            id="nested-too-deep",
        ),
        pytest.param(
            {"status": 302, "headers": {"Location": "/prescrypto/api/v2/patient/?limit=50&offset=0"}, "body": []},
            "HTTP 302: a redirect, not followed",
            id="redirect",
        ),
    ],
)
def test_a_body_that_does_not_decode_or_a_redirect_fails_the_stream_clearly(sandbox, sqlite_url, fault, error):
    engine, config = prescrypto(sandbox, sqlite_url)
    sandbox.faults({"path": PATIENTS, "after": 1, **fault})
    result = sweep(engine, config)
    assert (result.status, result.error) == ("failed", f"rx/patients: {error}")
    assert sandbox.stats()["total"] == 2  # neither retried nor followed
    assert_first_page_kept(engine)


# --- listings that do not end -------------------------------------------------------------------------


def _first_page(sandbox: Any, kind: str) -> dict[str, Any]:
    """A kind's source config, a fault serving its real first page for every request, and where its cursor
    must stay: just after that page."""
    if kind == "prescrypto":
        body: Any = source_patients(sandbox)[:50]
        return {"source": prescrypto_source(sandbox), "path": PATIENTS, "body": body, "cursor": {"offset": 50}}
    if kind == "gauges":
        page = sandbox.client.get(GAUGES, params={"page": 1, "page_size": 50}, headers=GAUGES_AUTH).json()
        return {"source": gauges_source(sandbox, concurrency=1), "path": GAUGES, "body": page, "cursor": {"page": 2}}
    if kind == "profiles":
        sandbox.switches("profiles", envelope=True, page_size=50)
        page = sandbox.client.get(PROFILES + "/", headers=PROFILES_AUTH).json()
        page["next"] = sandbox.url(PROFILES + "/?page=n{fired}")  # a new link every time
        first_next = sandbox.url(PROFILES + "/?page=n1")
        source = profiles_source(sandbox)
        return {"source": source, "path": PROFILES + "/", "body": page, "cursor": {"next_url": first_next}}
    sandbox.switches("particle", page_size=50)
    page = sandbox.client.get(PARTICLE, headers=PARTICLE_AUTH).json()
    page["continuation_token"] = "t{fired}"  # a new token every time
    return {"source": particle_source(sandbox), "path": PARTICLE, "body": page, "cursor": {"continuation_token": "t1"}}


@pytest.mark.parametrize("kind", ["prescrypto", "gauges", "profiles", "particle"])
def test_a_server_serving_one_page_for_every_position_fails_after_the_second_page(sandbox, sqlite_url, kind):
    staged = _first_page(sandbox, kind)
    config = make_config(sqlite_url, {"src": {**staged["source"], "streams": ["patients"]}})
    engine = engine_for(config)
    sandbox.faults({"path": staged["path"], "exact": True, "times": None, "body": staged["body"]})
    result = sweep(engine, config)
    assert result.status == "failed"
    assert "pagination loop" in (result.error or "") and "repeats the previous page's 50 records" in result.error
    assert sandbox.fault_counts()[0]["fired"] == 2
    assert count(engine, "source_record") == 50
    assert sweep_cursor(engine, "src") == staged["cursor"]


@pytest.mark.parametrize("kind", ["profiles", "particle"])
def test_a_next_link_or_token_too_long_is_not_followed_nor_stored(sandbox, sqlite_url, kind):
    if kind == "profiles":
        sandbox.switches("profiles", envelope=True, page_size=50)
        source, path = profiles_source(sandbox), PROFILES + "/"
        page = sandbox.client.get(path, params={"page": 2}, headers=PROFILES_AUTH).json()
        page["next"] = position = sandbox.url(PROFILES + "/?page=3&pad=" + "x" * 3000)
    else:
        sandbox.switches("particle", page_size=50)
        source, path = particle_source(sandbox), PARTICLE
        first = sandbox.client.get(path, headers=PARTICLE_AUTH).json()
        params = {"continuation_token": first["continuation_token"]}
        page = sandbox.client.get(path, params=params, headers=PARTICLE_AUTH).json()
        page["continuation_token"] = position = "x" * 3000
    config = make_config(sqlite_url, {"src": source})
    engine = engine_for(config)
    # Page 1 is the API's own; page 2 (its real records) hands out the long position.
    sandbox.faults({"path": path, "exact": True, "after": 1, "body": page})
    sandbox.client.delete("/_sandbox/stats")
    result = sweep(engine, config)
    assert (result.status, result.error) == (
        "failed",
        f"src/patients: the next page's link or token is {len(position)} characters long, more than 2048: not followed",
    )
    assert count(engine, "source_record") == 50  # page 1 stays; page 2 is not taken
    (cursor,) = rows(engine, "SELECT cursor FROM sync_state")
    assert "x" * 100 not in str(cursor["cursor"])
    assert sandbox.stats()["paths"][path.rstrip("/")] == 2  # the long position was never requested


def test_a_next_link_with_user_info_is_not_followed(sandbox, sqlite_url):
    sandbox.switches("profiles", envelope=True, page_size=50)
    page = sandbox.client.get(PROFILES + "/", headers=PROFILES_AUTH).json()
    page["next"] = page["next"].replace("http://", "http://someone:pa55@")
    config = make_config(sqlite_url, {"pf": profiles_source(sandbox)})
    engine = engine_for(config)
    sandbox.faults({"path": PROFILES, "body": page})
    sandbox.client.delete("/_sandbox/stats")
    result = sweep(engine, config)
    assert (result.status, result.error) == (
        "failed",
        "pf/patients: a next link points to another host or carries credentials: not followed",
    )
    assert sandbox.stats()["total"] == 1
    assert count(engine, "source_record") == 50


# --- credentials in positions -------------------------------------------------------------------------

ONCE = RetryPolicy(attempts=1)


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param("&token=leaked-9f8e7d6c", id="token-parameter"),
        pytest.param("&cursor=sandbox%252Dprofiles", id="configured-token-encoded-twice"),
    ],
)
def test_a_next_link_carrying_credentials_is_followed_but_never_stored(sandbox, db_url, credential):
    sandbox.switches("profiles", envelope=True, page_size=50)
    page = sandbox.client.get(PROFILES + "/", headers=PROFILES_AUTH).json()
    page["next"] += credential  # the API's own links keep it on every later page
    config = make_config(db_url, {"pf": profiles_source(sandbox)})
    engine = engine_for(config)
    secret = "leaked-9f8e7d6c" if "token=" in credential else "sandbox-profiles"
    stored: list[str] = []

    def read_cursor(*_: Any) -> None:  # after each committed page
        stored.extend(str(row["cursor"]) for row in rows(engine, "SELECT cursor FROM sync_state"))

    # Page 1 (its next link with the credential) and page 2 pass; page 3 fails for good.
    sandbox.faults([{"path": PROFILES, "body": page}, {"path": PROFILES, "status": 500, "after": 1, "times": None}])
    with capture_logs() as logs:
        failed = sweep(engine, config, retry=ONCE, progress=read_cursor)
    assert failed.status == "failed" and count(engine, "source_record") == 100
    assert len(stored) == 2 and not any(secret in text or "next_url" in text for text in stored)
    assert [e["event"] for e in logs if "credentials" in e["event"]] == [
        "a next link or token carries credentials: not stored (a resumed run lists from the start)"
    ]

    # The resumed sweep lists from the start, the credential in hand again, and sees the whole stream.
    sandbox.clear_faults()
    sandbox.faults({"path": PROFILES, "body": page})
    resumed = sweep(engine, config, progress=read_cursor)
    assert (resumed.status, resumed.counts.fetched, resumed.counts.inserted) == ("succeeded", 230, 130)
    assert not any(secret in text for text in stored)
