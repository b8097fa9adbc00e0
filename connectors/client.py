"""One keep-alive httpx client per source, with the source's auth header, timeouts and retries.

Retried with exponential backoff and jitter (tenacity), bounded in attempts and in total time: 429 (waiting
what ``Retry-After`` asks), 5xx, timeouts and dropped connections. 401/403 raise ``AuthError`` at once;
any other 4xx raises ``FetchError`` with the status and what ``connectors.error_bodies`` lets through of the
body. Once the run's ``stop`` event is set, a backoff wait ends at once and no further attempt is sent
(``Stopped``).
"""

from __future__ import annotations

import email.utils
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
import tenacity

from canonical.errors import AuthError, BodyError, FetchError, Stopped
from connectors.error_bodies import explain
from connectors.ratelimit import RateLimiter

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    max_elapsed: float = 120.0  # seconds from the first attempt; no retry starts after this
    initial_wait: float = 0.5
    max_wait: float = 30.0


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date.

    >>> retry_after_seconds("3")
    3.0
    >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    10.0
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def error_message(response: httpx.Response) -> str:
    """What the error body may tell (``connectors.error_bodies``): a known vendor message, documented field
    names; never the body's own text."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return ""
    return explain(body)


class SourceClient:
    """GETs JSON from one source. Thread-safe (httpx.Client is), so detail fetches can share it."""

    def __init__(
        self,
        name: str,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 10,
        rate_limit: float | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.name = name
        self.retry = retry or RetryPolicy()
        self._stop = stop or threading.Event()
        self._limiter = RateLimiter(rate_limit, sleep=self._wait_unless_stopped) if rate_limit else None
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Accept": "application/json", **headers},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
        )

    def __enter__(self) -> SourceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def link(self, url: str) -> str | None:
        """A ``next`` link as the URL to request: resolved against ``base_url`` when relative, and put on its
        scheme and port when only those differ (a proxy that terminates TLS writes ``http://`` links). None
        for another host: the token would go with the request.

        >>> c = SourceClient("s", "https://api.example/profiles", {})
        >>> c.link("http://api.example/patients/?page=2"), c.link("/patients/?page=3"), c.link("https://evil.example/")
        ('https://api.example/patients/?page=2', 'https://api.example/patients/?page=3', None)
        """
        base = self._http.base_url
        target = base.join(url)
        if target.host.lower() != base.host.lower():
            return None
        return str(target.copy_with(scheme=base.scheme, port=base.port))

    def get_json(self, url: str, params: dict[str, Any] | None, stream: str) -> Any:
        """GET ``url`` (a path under the base URL, or absolute) and return the decoded JSON body."""
        policy = self.retry
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(policy.attempts) | tenacity.stop_after_delay(policy.max_elapsed),
            wait=_wait(policy),
            retry=tenacity.retry_if_exception_type(_Transient),
            sleep=self._wait_unless_stopped,
            before_sleep=lambda state: log.warning(
                "retrying",
                source=self.name,
                stream=stream,
                attempt=state.attempt_number,
                reason=str(state.outcome.exception()) if state.outcome else None,
                wait_s=round(state.upcoming_sleep, 3),
            ),
            reraise=True,
        )
        try:
            response = retrying(self._get_once, url, params, stream)
        except _Transient as exc:
            if self._stop.is_set():  # the stop, not the source, ended the retries
                raise Stopped(f"{self.name}/{stream}: the run is ending: not retried ({exc.reason})") from None
            raise FetchError(self.name, stream, f"gave up after retries: {exc.reason}") from None
        try:
            return response.json()
        except ValueError:
            raise BodyError(self.name, stream, f"response to {url} is not JSON") from None

    def _wait_unless_stopped(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a stop ends the wait; the next attempt then raises Stopped

    def _get_once(self, url: str, params: dict[str, Any] | None, stream: str) -> httpx.Response:
        if self._limiter is not None:
            self._limiter.acquire()  # its wait, too, ends on a stop
        if self._stop.is_set():
            raise Stopped(f"{self.name}/{stream}: the run is ending: request not sent")
        try:
            response = self._http.get(url, params=params)
        except httpx.TimeoutException as exc:
            raise _Transient(f"timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Transient(f"connection failed ({type(exc).__name__})") from None
        status = response.status_code
        if status in (401, 403):
            raise AuthError(self.name, stream, status, error_message(response))
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}", retry_after_seconds(response.headers.get("Retry-After")))
        if status >= 400:
            detail = error_message(response)
            raise FetchError(self.name, stream, f"HTTP {status}" + (f": {detail}" if detail else ""), status)
        return response


def _wait(policy: RetryPolicy) -> tenacity.wait.wait_base:
    backoff = tenacity.wait_exponential_jitter(
        multiplier=policy.initial_wait, max=policy.max_wait, jitter=policy.initial_wait
    )

    class _RetryAfterOrBackoff(tenacity.wait.wait_base):
        def __call__(self, state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _Transient) and exc.retry_after is not None:
                # The server's own wait, in full, within the time budget (stop_after_delay ends it there).
                return min(exc.retry_after, policy.max_elapsed)
            return backoff(state)

    return _RetryAfterOrBackoff()
