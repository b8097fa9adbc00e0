"""One keep-alive httpx client per source, with the source's auth header, timeouts and retries.

Retried with exponential backoff and jitter (tenacity), bounded in attempts and in total time: 429 (waiting
what ``Retry-After`` asks), 5xx, timeouts and dropped connections. 401/403 raise ``AuthError`` at once;
any other 4xx raises ``FetchError`` with the status and what ``connectors.error_bodies`` lets through of the
body, and so does a 3xx (a redirect is never followed: it would take the token along, and its body is not
data). Once the run's ``stop`` event is set, a backoff wait ends at once and no further attempt is sent
(``Stopped``).

Every response is bounded. The body is read as a stream and gzip/deflate are inflated here, a step at a time,
so at most ``max_response_bytes`` decoded bytes are ever held: past that the read stops with a ``BodyError``
(not retried). A response still arriving ``deadline`` seconds after the request was sent is abandoned as a
timeout (retried like one), however steadily its bytes trickle in under the read timeout. A body that does not
decode (bad gzip, another Content-Encoding, invalid UTF-8 or JSON, nesting too deep to parse) is a ``BodyError``.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
import tenacity

from canonical.errors import AuthError, BodyError, FetchError, Stopped
from connectors import DEFAULT_MAX_RESPONSE_BYTES
from connectors.error_bodies import explain
from connectors.ratelimit import RateLimiter

log = structlog.get_logger(__name__)

DEADLINE_PER_TIMEOUT = 3  # the default deadline: this many read timeouts
ERROR_BODY_BYTES = 64 * 1024  # read of an error response, for its message; past it the body is left unread
_INFLATE_STEP = 64 * 1024  # decoded bytes one inflate call may produce


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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        deadline: float | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.retry = retry or RetryPolicy()
        self.max_response_bytes = max_response_bytes
        self.deadline = DEADLINE_PER_TIMEOUT * timeout if deadline is None else deadline
        self.secrets = tuple(secret for secret in secrets if secret)  # what no stored position may contain
        self._stop = stop or threading.Event()
        self._limiter = RateLimiter(rate_limit, sleep=self._wait_unless_stopped) if rate_limit else None
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Accept": "application/json", "Accept-Encoding": "gzip, deflate", **headers},
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
        for another host, where the token would go with the request, and for a link with credentials of its
        own (``user:password@``), which would be sent instead of the source's.

        >>> c = SourceClient("s", "https://api.example/profiles", {})
        >>> c.link("http://api.example/patients/?page=2"), c.link("/patients/?page=3"), c.link("https://evil.example/")
        ('https://api.example/patients/?page=2', 'https://api.example/patients/?page=3', None)
        >>> c.link("https://user:pw@api.example/patients/?page=2") is None
        True
        """
        base = self._http.base_url
        try:
            target = base.join(url)
        except httpx.InvalidURL:
            return None
        if target.host.lower() != base.host.lower() or target.userinfo:
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
            body = retrying(self._get_once, url, params, stream)
        except _Transient as exc:
            if self._stop.is_set():  # the stop, not the source, ended the retries
                raise Stopped(f"{self.name}/{stream}: the run is ending: not retried ({exc.reason})") from None
            raise FetchError(self.name, stream, f"gave up after retries: {exc.reason}") from None
        # Messages never name the URL: a next link or a listed id in a path is the source's text, not ours.
        try:
            return _decoded_json(body)
        except ValueError:
            raise BodyError(self.name, stream, "a response is not JSON") from None
        except RecursionError:
            raise BodyError(self.name, stream, "a response nests too deeply to decode") from None

    def _wait_unless_stopped(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a stop ends the wait; the next attempt then raises Stopped

    def _get_once(self, url: str, params: dict[str, Any] | None, stream: str) -> bytearray:
        """One attempt: the decoded body of a 2xx response; raises what the status or the body calls for."""
        if self._limiter is not None:
            self._limiter.acquire()  # its wait, too, ends on a stop
        if self._stop.is_set():
            raise Stopped(f"{self.name}/{stream}: the run is ending: request not sent")
        deadline = time.monotonic() + self.deadline
        try:
            with self._http.stream("GET", url, params=params) as response:
                status = response.status_code
                if status in (401, 403):
                    raise AuthError(self.name, stream, status, error_message(self._error_response(response, deadline)))
                if status == 429 or status >= 500:
                    raise _Transient(f"HTTP {status}", retry_after_seconds(response.headers.get("Retry-After")))
                if status >= 400:
                    detail = error_message(self._error_response(response, deadline))
                    raise FetchError(self.name, stream, f"HTTP {status}" + (f": {detail}" if detail else ""), status)
                if status >= 300:
                    raise FetchError(self.name, stream, f"HTTP {status}: a redirect, not followed", status)
                try:
                    return self._read(response, self.max_response_bytes, deadline)
                except _Oversized:
                    raise BodyError(
                        self.name,
                        stream,
                        f"a response is larger than max_response_bytes ({self.max_response_bytes} bytes): "
                        "not read further",
                    ) from None
                except _Undecodable as exc:
                    raise BodyError(self.name, stream, f"a response: {exc}") from None
        except httpx.TimeoutException as exc:
            raise _Transient(f"timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Transient(f"connection failed ({type(exc).__name__})") from None

    def _read(self, response: httpx.Response, limit: int, deadline: float) -> bytearray:
        """The decoded body, read chunk by chunk: ``_Oversized`` past ``limit`` decoded bytes, a timeout once
        ``deadline`` (a ``time.monotonic()`` instant) has passed, ``_Undecodable`` for a bad encoding."""
        self._check_deadline(deadline)
        if response.is_stream_consumed:  # a transport that hands over a body already read and decoded (a mock)
            body = _Body("", limit)
            body.feed(response.content)
            return body.finish()
        body = _Body(response.headers.get("Content-Encoding", ""), limit)
        for chunk in response.iter_raw():
            self._check_deadline(deadline)
            body.feed(chunk)
        return body.finish()

    def _check_deadline(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise _Transient(f"timeout (still arriving after the {self.deadline:g} s deadline)")

    def _error_response(self, response: httpx.Response, deadline: float) -> httpx.Response:
        """An error response with its body read (at most ``ERROR_BODY_BYTES``, decoded), for ``error_message``;
        a body too large or undecodable is left out."""
        try:
            content = bytes(self._read(response, min(ERROR_BODY_BYTES, self.max_response_bytes), deadline))
        except (_Oversized, _Undecodable):
            content = b""
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(response.status_code, headers=headers, content=content, request=response.request)


class _Oversized(Exception):
    """The decoded body passed its limit."""


class _Undecodable(Exception):
    """The body is not in the Content-Encoding it names, or names one not accepted."""


class _Body:
    """A response body as its chunks arrive, inflated when gzip or deflate, holding at most ``limit`` bytes.

    Inflating goes ``_INFLATE_STEP`` decoded bytes at a time (zlib's ``max_length``), so a chunk of a
    compression bomb is stopped at the limit instead of expanding in full first.

    >>> import gzip
    >>> body = _Body("gzip", limit=10)
    >>> body.feed(gzip.compress(b"[1, 2]")); bytes(body.finish())
    b'[1, 2]'
    >>> _Body("gzip", limit=10).feed(gzip.compress(b" " * 100))
    Traceback (most recent call last):
    ...
    connectors.client._Oversized
    """

    def __init__(self, encoding: str, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.encoding = encoding.strip().lower()
        self._inflate: Any = None  # a zlib decompress object; None: the body is sent as it is
        self._first = True  # no chunk inflated yet
        if self.encoding in ("gzip", "x-gzip"):
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.encoding == "deflate":
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS)
        elif self.encoding not in ("", "identity"):
            raise _Undecodable("its Content-Encoding is not accepted (only gzip and deflate)")

    def feed(self, chunk: bytes) -> None:
        if self._inflate is None:
            self._add(chunk)
            return
        pending = chunk
        while True:
            try:
                out = self._inflate.decompress(pending, _INFLATE_STEP)
            except zlib.error:
                if self.encoding == "deflate" and self._first and pending is chunk:
                    # "deflate" is zlib-wrapped by the standard, raw by some servers: the other is tried once
                    self._first = False
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise _Undecodable(f"the body is not valid {self.encoding}") from None
            self._first = False
            self._add(out)
            if self._inflate.unused_data:
                raise _Undecodable(f"data follows the end of the {self.encoding} stream")
            pending = self._inflate.unconsumed_tail
            if not pending and len(out) < _INFLATE_STEP:  # all consumed, nothing left to come out
                return

    def finish(self) -> bytearray:
        if self._inflate is not None and not self._inflate.eof:
            raise _Undecodable(f"the {self.encoding} stream is truncated")
        return self.data

    def _add(self, out: bytes) -> None:
        if len(self.data) + len(out) > self.limit:
            raise _Oversized
        self.data += out


def _decoded_json(body: bytes | bytearray) -> Any:
    """The JSON of a body, keeping what one odd record holds from failing its whole page: bytes that are not
    UTF-8 become U+FFFD, and an integer longer than Python will convert stays its text (the record's mapping
    then judges it).

    >>> _decoded_json(b'["' + bytes([255]) + b'"]'), type(_decoded_json(b"[" + b"7" * 5000 + b"]")[0])
    (['\ufffd'], <class 'str'>)
    """
    try:
        return json.loads(body, parse_int=_int_or_text)
    except UnicodeDecodeError:
        return json.loads(bytes(body).decode("utf-8", errors="replace"), parse_int=_int_or_text)


def _int_or_text(digits: str) -> int | str:
    return int(digits) if len(digits) <= 4000 else digits


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
