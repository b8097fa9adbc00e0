"""The daemon's Prometheus metrics and liveness, served on 127.0.0.1 (``daemon --metrics-port``).

- ``/metrics``: what the daemon's runs did since it started (counters and a histogram, fed as each stream's
  run ends), and what the database holds now (read at each scrape: the lag since each stream's last success,
  quarantined records, persons, open reviews).
- ``/healthz``: 200 while the scheduler runs and the database answers, 503 otherwise, with the reason.

Labels are source and stream names, modes and statuses only: nothing from a record.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from canonical.errors import ServeError
from pipeline.storage import health
from pipeline.storage.db import reading, utcnow
from pipeline.storage.plain import aware
from pipeline.storage.run_values import Status
from pipeline.sync.messages import database_reason
from pipeline.sync.runner import RunResult

log = structlog.get_logger(__name__)
disable_created_metrics()  # the *_created series: when each label set first appeared, which no alert needs

OUTCOMES = ("fetched", "inserted", "updated", "unchanged", "quarantined", "deleted")
# A stream run takes from a fraction of a second (nothing new) to an hour (a first backfill).
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 15, 30, 60, 300, 900, 3600)


class Metrics:
    """The registry the daemon serves; ``record`` takes each stream run's result as it ends."""

    def __init__(self, engine: Engine, streams: list[tuple[str, str]]) -> None:
        self.registry = CollectorRegistry()
        stream = ["source", "stream"]
        self.records = Counter(
            "patientsync_records", "Records by what their runs did with them.", [*stream, "outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.runs = Counter(
            "patientsync_runs", "Stream runs by how they ended.", [*stream, "mode", "status"], registry=self.registry
        )
        self.failures = Counter("patientsync_run_failures", "Stream runs that failed.", stream, registry=self.registry)
        self.duration = Histogram(
            "patientsync_run_duration_seconds", "How long stream runs took.", [*stream, "mode"],
            buckets=DURATION_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.registry.register(DatabaseCollector(engine, streams))

    def record(self, result: RunResult) -> None:
        labels = {"source": result.source, "stream": result.stream}
        counts = result.counts
        found = (counts.fetched, counts.inserted, counts.updated, counts.unchanged, counts.quarantined, result.deleted)
        for outcome, n in zip(OUTCOMES, found, strict=True):
            self.records.labels(**labels, outcome=outcome).inc(n)
        self.runs.labels(**labels, mode=str(result.mode), status=str(result.status)).inc()
        if result.status == Status.failed:
            self.failures.labels(**labels).inc()
        if result.status != Status.skipped:  # a skipped run did no work: its time says nothing
            self.duration.labels(**labels, mode=str(result.mode)).observe(result.seconds)


class DatabaseCollector(Collector):
    """Gauges read from the database at each scrape; if it does not answer, ``patientsync_database_up`` 0.

    The lag is given for each configured stream (``streams``), +Inf for one that never succeeded, so that an
    alert on it fires for a stream that always fails too."""

    def __init__(self, engine: Engine, streams: list[tuple[str, str]]) -> None:
        self.engine = reading(engine)
        self.streams = streams

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("patientsync_database_up", "Whether the database answered this scrape.")
        try:
            with self.engine.connect() as conn:
                successes = health.last_successes(conn)
                quarantined = health.quarantined(conn)
                persons, reviews = health.live_persons(conn), health.open_reviews(conn)
        except SQLAlchemyError as exc:
            log.warning("metrics: the database did not answer", error=database_reason(exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now = utcnow()
        lag = GaugeMetricFamily(
            "patientsync_stream_lag_seconds",
            "Seconds since the stream's last successful run.",
            labels=["source", "stream"],
        )
        for source, stream in self.streams:
            at = successes.get((source, stream))
            lag.add_metric([source, stream], math.inf if at is None else (now - aware(at)).total_seconds())
        yield lag
        held = GaugeMetricFamily(
            "patientsync_quarantined_records", "Records in quarantine now.", labels=["source", "stream"]
        )
        for (source, stream), n in sorted(quarantined.items()):
            held.add_metric([source, stream], n)
        yield held
        yield GaugeMetricFamily("patientsync_persons", "Live persons the patients resolve to.", value=persons)
        yield GaugeMetricFamily("patientsync_open_reviews", "Possible matches waiting for review.", value=reviews)


def healthy(engine: Engine, scheduler_running: Callable[[], bool]) -> str | None:
    """None while the scheduler runs and the database answers; else why not."""
    if not scheduler_running():
        return "the scheduler is not running"
    try:
        with reading(engine).connect() as conn:
            health.answers(conn)
    except SQLAlchemyError as exc:
        return f"the database does not answer: {database_reason(exc)}"
    return None


REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request or read the answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """One log line for a request that failed (a client gone mid-answer), not a traceback on stderr."""
        log.warning("metrics: a request failed", error=type(sys.exc_info()[1]).__name__)


class MetricsServer:
    """``/metrics`` and ``/healthz`` on 127.0.0.1:port, from a thread of its own. Port 0 takes a free one."""

    def __init__(self, metrics: Metrics, engine: Engine, scheduler_running: Callable[[], bool], port: int) -> None:
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    problem = healthy(engine, scheduler_running)
                    self._send(503 if problem else 200, f"{problem or 'ok'}\n".encode(), "text/plain; charset=utf-8")
                else:
                    self._send(404, b"not found: /metrics or /healthz\n", "text/plain; charset=utf-8")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
                """Scrapes are not logged: one every few seconds would drown the runs' lines."""

        Handler.timeout = REQUEST_TIMEOUT  # a client that sends half a request does not keep its thread
        try:
            self.server = _Server(("127.0.0.1", port), Handler)
        except OSError as exc:
            raise ServeError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)

    def __enter__(self) -> MetricsServer:
        self._thread.start()
        log.info("metrics served", url=f"http://127.0.0.1:{self.port}/metrics")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
