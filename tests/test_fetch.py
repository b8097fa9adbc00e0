"""Concurrent detail fetches: bounded, in order, 404 as gone, and a failure stops what has not started; and
what one response may be: inflated within its limit, never a redirect.

An httpx MockTransport stands in for the server here: in-flight counts and a failure mid-batch are what a
real server cannot show or stage deterministically.
"""

from __future__ import annotations

import gzip
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator

import httpx
import pytest

from canonical.errors import BodyError, FetchError, Stopped
from connectors import profiles
from connectors.client import RetryPolicy, SourceClient, _Body, _Oversized
from connectors.fetch import Skipped, fetch_all
from connectors.stream import read_pages


class Recorder:
    def __init__(self, delay: float = 0.02, fail: str | None = None) -> None:
        self.delay, self.fail = delay, fail
        self.lock = threading.Lock()
        self.in_flight = self.peak = 0
        self.paths: list[str] = []
        self.sent_before_failure: int | None = None  # requests sent when the failing one was answered
        self.together: threading.Barrier | None = None  # held until that many requests are in flight at once

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.paths.append(request.url.path)
        if self.together is not None:
            self.together.wait()  # fewer allowed in flight: it times out, and the request fails
        time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
        key = request.url.path.rsplit("/", 1)[-1]
        if key == self.fail:
            with self.lock:
                self.sent_before_failure = len(self.paths)
            return httpx.Response(400, json={"error": "bad request"})
        if key.startswith("gone"):
            return httpx.Response(404, json={"error": "patient not found"})
        return httpx.Response(200, json={"patient_id": key})


def client(recorder: Recorder, rate_limit: float | None = None) -> SourceClient:
    return SourceClient(
        "particle",
        "http://particle.test",
        {},
        transport=httpx.MockTransport(recorder),
        retry=RetryPolicy(attempts=1),
        max_connections=16,
        rate_limit=rate_limit,
    )


@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_at_most_concurrency_requests_in_flight_and_results_in_order(concurrency: int) -> None:
    # Structural, not timed: each request waits until `concurrency` of them are in flight together (24 is a
    # multiple of every level), so the peak reaches the bound on a slow machine too; the cap keeps it there.
    recorder = Recorder()
    recorder.together = threading.Barrier(concurrency, timeout=30)
    keys = [f"p{i}" for i in range(24)]
    with client(recorder) as c:
        bodies = fetch_all(c, [(f"/api/v1/patients/{k}", None) for k in keys], "patients", concurrency)
    assert bodies == [{"patient_id": k} for k in keys]
    assert recorder.peak == concurrency


def test_a_404_is_gone_not_an_error() -> None:
    with client(Recorder()) as c:
        bodies = fetch_all(c, [("/x/p1", None), ("/x/gone1", None), ("/x/p2", None)], "patients", 2)
    assert bodies == [
        {"patient_id": "p1"},
        Skipped(404, "particle/patients: HTTP 404: patient not found"),
        {"patient_id": "p2"},
    ]


def test_a_null_body_is_a_body_not_a_deletion() -> None:
    def null(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"null", headers={"content-type": "application/json"})

    c = SourceClient("particle", "http://particle.test", {}, transport=httpx.MockTransport(null))
    with c:
        assert fetch_all(c, [("/x/a", None), ("/x/b", None)], "patients", 2) == [None, None]


def sent_after_failure(recorder: Recorder) -> int:
    assert recorder.sent_before_failure is not None
    return len(recorder.paths) - recorder.sent_before_failure


def test_a_failure_cancels_the_requests_not_started() -> None:
    recorder = Recorder(delay=0.05, fail="p2")
    keys = [f"p{i}" for i in range(40)]
    with client(recorder) as c, pytest.raises(FetchError) as caught:
        fetch_all(c, [(f"/x/{k}", None) for k in keys], "patients", 2)
    assert caught.value.status == 400
    # Only a worker already between two requests may send one more; each request takes 50 ms.
    assert sent_after_failure(recorder) <= 1


def test_a_failure_is_raised_without_waiting_for_earlier_slow_requests() -> None:
    class SlowFirst(Recorder):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/p0"):
                time.sleep(0.5)
            return super().__call__(request)

    recorder = SlowFirst(delay=0.05, fail="p1")
    with client(recorder) as c, pytest.raises(FetchError):
        fetch_all(c, [(f"/x/p{i}", None) for i in range(200)], "patients", 4)
    # Not the ~190 a wait in submission order (p0 first) would have sent; at most one per other worker.
    assert sent_after_failure(recorder) <= 3


def test_the_rate_limit_covers_concurrent_requests() -> None:
    recorder = Recorder(delay=0)
    started = time.monotonic()
    with client(recorder, rate_limit=50) as c:
        fetch_all(c, [(f"/x/p{i}", None) for i in range(30)], "patients", 8)
    # Slots are evenly spaced: 30 requests at 50/s span at least 29 x 20 ms, whatever the concurrency.
    # (A lower bound only: a slow machine cannot make it fail.)
    assert time.monotonic() - started >= 0.4


def test_a_next_link_to_another_host_is_not_followed() -> None:
    hosts: list[str] = []

    def envelope(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        body = {
            "count": 9,
            "next": "http://elsewhere.test/patients/?page=2",
            "previous": None,
            "results": [{"unique_id": "p1"}],
        }
        return httpx.Response(200, json=body)

    c = SourceClient(
        "pf", "http://profiles.test", {"Authorization": "Token secret"}, transport=httpx.MockTransport(envelope)
    )
    with c, pytest.raises(BodyError, match="another host"):
        list(read_pages(c, profiles.PATIENTS, {}))
    assert hosts == ["profiles.test"]  # the token never went to elsewhere.test


def test_once_stop_is_set_no_request_starts() -> None:
    stop = threading.Event()

    class StopAtFifth(Recorder):
        calls = 0

        def __call__(self, request: httpx.Request) -> httpx.Response:
            with self.lock:
                self.calls += 1
                if self.calls == 5:
                    stop.set()
            return super().__call__(request)

    recorder = StopAtFifth(delay=0.01)
    with client(recorder) as c, pytest.raises(Stopped):
        fetch_all(c, [(f"/x/p{i}", None) for i in range(100)], "patients", 2, stop=stop)
    # The fifth request sets stop; only the other worker, already past its check, may send one more.
    assert len(recorder.paths) <= 6


def test_a_stored_next_link_on_another_host_restarts_the_listing() -> None:
    from pipeline.sync.batches import listing_batches

    hosts: list[str] = []

    def bare_list(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(200, json=[{"unique_id": "p1"}])

    c = SourceClient("pf", "http://new-host.test", {}, transport=httpx.MockTransport(bare_list))
    with c:
        batches = list(
            listing_batches(c, profiles.PATIENTS, {"__url__": "http://old-host.test/patients/?page=3"}, None, 1)
        )
    assert [b.records for b in batches] == [[{"unique_id": "p1"}]] and hosts == ["new-host.test"]


def test_a_stop_ends_a_retry_wait_and_sends_no_further_attempt() -> None:
    stop = threading.Event()
    sent: list[str] = []

    def unavailable(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        stop.set()  # the run is told to stop while the client waits out Retry-After
        return httpx.Response(503, headers={"Retry-After": "60"})

    c = SourceClient("particle", "http://particle.test", {}, transport=httpx.MockTransport(unavailable), stop=stop)
    started = time.monotonic()
    with c, pytest.raises(Stopped):
        c.get_json("/api/v1/patients", None, "patients")
    assert sent == ["/api/v1/patients"]
    assert time.monotonic() - started < 30  # not the 60 s Retry-After


def test_a_stop_ends_a_rate_limit_wait_and_the_request_is_not_sent() -> None:
    stop = threading.Event()
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        stop.set()  # the next request would wait 60 s for its slot
        return httpx.Response(200, json=[])

    transport = httpx.MockTransport(answer)
    c = SourceClient("particle", "http://particle.test", {}, transport=transport, rate_limit=1 / 60, stop=stop)
    started = time.monotonic()
    with c, pytest.raises(Stopped):
        c.get_json("/a", None, "patients")
        c.get_json("/b", None, "patients")
    assert sent == ["/a"]
    assert time.monotonic() - started < 30


def test_an_interrupt_stops_waiting_for_the_next_batch() -> None:
    from pipeline.sync.prefetch import Prefetched

    release, interrupt = threading.Event(), threading.Event()

    def slow() -> Iterator[int]:
        yield 1
        release.wait(30)  # a batch still being fetched
        yield 2

    got: list[int] = []
    with Prefetched(slow(), interrupt=interrupt) as batches:
        with pytest.raises(Stopped):
            for batch in batches:
                got.append(batch)
                interrupt.set()
        release.set()  # lets the producer end before leaving
    assert got == [1]


def test_one_network_chunk_of_a_bomb_is_inflated_only_up_to_the_limit() -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = packer.compress(b" " * (256 << 20)) + packer.flush()  # ~250 KB standing for 256 MiB
    body = _Body("gzip", limit=1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(_Oversized):
            body.feed(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 << 20  # the 1 MiB limit and one inflate step, not the 256 MiB the chunk stands for


class Raw(httpx.SyncByteStream):
    """A body handed over as bytes on the wire, as a network transport does (not decoded beforehand)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data


@pytest.mark.parametrize(
    ("encoding", "packed"),
    [
        # mtime=0: a gzip header holds the time it was made, and pytest-xdist's workers must collect one id
        ("gzip", gzip.compress(b'[{"id": 1}]', mtime=0)),
        ("deflate", zlib.compress(b'[{"id": 1}]')),  # zlib-wrapped, as the standard says
        ("deflate", zlib.compress(b'[{"id": 1}]', wbits=-zlib.MAX_WBITS)),  # raw, as some servers send
        ("identity", b'[{"id": 1}]'),
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw", "identity"],
)
def test_compressed_bodies_are_inflated_and_asked_for(encoding: str, packed: bytes) -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers["Accept-Encoding"])
        return httpx.Response(200, headers={"Content-Encoding": encoding}, stream=Raw(packed))

    with SourceClient("s", "http://s.test", {}, transport=httpx.MockTransport(answer)) as c:
        assert c.get_json("/x", None, "patients") == [{"id": 1}]
    assert asked == ["gzip, deflate"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_error_and_never_followed(status: int) -> None:
    sent: list[str] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(status, headers={"Location": "http://s.test/elsewhere"}, json=[{"id": 1}])

    c = SourceClient("s", "http://s.test", {}, transport=httpx.MockTransport(redirect))
    with c, pytest.raises(FetchError) as caught:
        c.get_json("/x", None, "patients")
    assert (str(caught.value), caught.value.status) == (f"s/patients: HTTP {status}: a redirect, not followed", status)
    assert sent == ["http://s.test/x"]
