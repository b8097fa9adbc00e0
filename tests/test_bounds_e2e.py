"""Every response is bounded: faults staged by the sandbox over real HTTP.

Each bound fails the stream with a clear error while the pages before it stay stored and the cursor stays at
the last good page: a gzip bomb, an endless body, a slowloris, bodies that do not decode, a redirect. Memory
is measured with tracemalloc's peak, never with wall-clock windows.
"""

from __future__ import annotations

import base64
import gzip
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine

from connectors.client import RetryPolicy
from pipeline.runner import SWEEP, RunResult
from pipeline.state import load_cursor
from tests.support import (
    count,
    engine_for,
    make_config,
    prescrypto_source,
    run,
)

PATIENTS = "/prescrypto/api/v2/patient/"
MiB = 1024 * 1024


def sweep(engine: Engine, config: Any, **options: Any) -> RunResult:
    (result,) = run(config, engine, SWEEP, **options)
    return result


def sweep_cursor(engine: Engine, source: str, stream: str = "patients") -> dict[str, Any]:
    with engine.connect() as conn:
        cursor = load_cursor(conn, source, stream)
    return {k: v for k, v in cursor.get("sweep", {}).items() if k not in ("started_at", "resumed")}


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
        "rx/patients: response to /api/v2/patient/ is larger than max_response_bytes (1048576 bytes): not read further",
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
        "rx/patients: response to /api/v2/patient/ is larger than max_response_bytes (262144 bytes): not read further"
    )
    assert peak < 2 * MiB  # ~1 MiB: the 256 KiB read, page 1 and the run's own bookkeeping
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
            "response to /api/v2/patient/: the body is not valid gzip",
            id="bad-gzip",
        ),
        pytest.param(
            {"raw_base64": _b64(gzip.compress(b'[{"uid": "u1"}]')[:-6]), "headers": GZIP},
            "response to /api/v2/patient/: the gzip stream is truncated",
            id="truncated-gzip",
        ),
        pytest.param(
            {"headers": {"Content-Encoding": "br"}},  # on the API's own page
            "response to /api/v2/patient/: Content-Encoding 'br' is not accepted (only gzip and deflate)",
            id="other-encoding",
        ),
        pytest.param(
            {"raw_base64": _b64(b'[{"uid": "\xff\xfe"}]')},
            "response to /api/v2/patient/ is not JSON (not valid UTF-8 text)",
            id="invalid-utf8",
        ),
        pytest.param(
            {"raw": "[" * 100_000 + "]" * 100_000},
            "response to /api/v2/patient/ nests too deeply to decode",
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
