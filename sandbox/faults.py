"""Fault injection in front of every simulated API: error statuses, Retry-After, slow, dropped, oversized,
malformed and never-ending responses.

A rule, as posted to `/_sandbox/faults`:

    {"path": "/prescrypto/api/v2/patient/",  # matches request paths that start with this
     "exact": true,                          # optional: only the path itself, not those under it (a listing,
                                             # not its records' detail paths)
     "status": 429,                          # answer with this status (JSON {"message": <reason>}); default 200
                                             # when the rule gives a body of its own (below)
     "times": 2,                             # fire this many times, then the rule is spent (null: forever)
     "retry_after": 1,                       # optional: a Retry-After header, in seconds
     "delay": 0.5,                           # optional: wait this long first (alone: a slow success)
     "drop": true,                           # optional: close the connection without any response
     "after": 3,                             # optional: let the first 3 matching requests through
     "method": "GET",                        # optional: only this method
     "headers": {"Location": "/x"},          # optional: extra response headers (replacing any of the same name),
                                             # on the rule's own response or, without a status, on the API's
     "trickle": 2.0,                         # optional: send the body one byte every 2 s (alone: the API's
                                             # own response, trickled: a slowloris)
     # at most one body of its own:
     "body": {...},                          # answer with this JSON
     "raw": "not json",                      # answer with this text's UTF-8 bytes, exactly (no Content-Type
                                             # but application/json unless `headers` say otherwise)
     "raw_base64": "H4sI...",                # answer with these bytes exactly, e.g. a broken gzip stream with
                                             # "headers": {"Content-Encoding": "gzip"}
     "gzip_bomb": 1073741824,                # this many bytes of JSON (spaces, then []) sent gzip-compressed
                                             # (Content-Encoding: gzip), made on the fly: ~1 KB sent per MiB
     "endless": true}                        # a chunked body that never ends ("[" and then spaces), until the
                                             # client goes away

In a string of `body`, and in `raw`, `{fired}` becomes how many times the rule has fired (1 on the first
answer), so a rule answering every request can still hand out a new next link or token each time:
`{"path": ..., "times": null, "body": {"continuation_token": "t{fired}", "patients": [...]}}` serves the same
page for every token. Without `{fired}`, a rule with `times: null` serves one fixed page for every offset or
page number.

Rules are tried in the order posted; the first one that fires decides the request. `/_sandbox` itself is
never faulted, so a test can always clean up.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import http
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BODIES = ("body", "raw", "raw_base64", "gzip_bomb", "endless")
_OPTIONS = ("exact", "status", "times", "retry_after", "delay", "drop", "after", "method", "headers", "trickle")
_KEYS = frozenset(("path", *_OPTIONS, *_BODIES))
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VALUE = re.compile(r"[\x20-\x7e\t]*")
_JSON = {"Content-Type": "application/json"}
_BLOCK = 1 << 20  # bytes of a gzip bomb or an endless body made at a time
_ENDLESS_CAP = 1 << 30  # an endless body ends here only on a server that cannot tell the client went away


@dataclass
class FaultRule:
    path: str
    exact: bool = False
    status: int | None = None
    times: int | None = 1
    retry_after: float | None = None
    delay: float = 0.0
    drop: bool = False
    after: int = 0
    method: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    trickle: float = 0.0
    body: Any = None
    raw: str | None = None
    raw_base64: str | None = None
    gzip_bomb: int | None = None
    endless: bool = False
    seen: int = 0  # matching requests, fired or not
    fired: int = 0

    @classmethod
    def parse(cls, raw: Any) -> FaultRule:
        """A rule from its JSON form; ValueError names what is wrong."""
        if not isinstance(raw, dict):
            raise ValueError(f"a fault rule is a JSON object, not {raw!r}")
        unknown = set(raw) - _KEYS
        if unknown:
            raise ValueError(f"unknown fault rule keys: {sorted(unknown)}")
        if not isinstance(raw.get("path"), str) or not raw["path"].startswith("/"):
            raise ValueError("a fault rule needs a 'path' starting with '/'")
        rule = cls(**raw)
        if rule.status is not None and not (_is_int(rule.status) and 100 <= rule.status <= 599):
            raise ValueError(f"'status' must be an HTTP status code, not {rule.status!r}")
        for name, ok in (
            ("times", rule.times is None or (_is_int(rule.times) and rule.times >= 0)),
            ("after", _is_int(rule.after) and rule.after >= 0),
            ("delay", _is_number(rule.delay) and rule.delay >= 0),
            ("retry_after", rule.retry_after is None or (_is_number(rule.retry_after) and rule.retry_after >= 0)),
            ("drop", isinstance(rule.drop, bool)),
            ("exact", isinstance(rule.exact, bool)),
            ("method", rule.method is None or isinstance(rule.method, str)),
            ("headers", _is_header_map(rule.headers)),
            ("trickle", _is_number(rule.trickle) and rule.trickle >= 0),
            ("raw", rule.raw is None or isinstance(rule.raw, str)),
            ("raw_base64", rule.raw_base64 is None or _is_base64(rule.raw_base64)),
            ("gzip_bomb", rule.gzip_bomb is None or (_is_int(rule.gzip_bomb) and rule.gzip_bomb >= 2)),
            ("endless", isinstance(rule.endless, bool)),
        ):
            if not ok:
                raise ValueError(f"invalid fault rule {name!r}: {getattr(rule, name)!r}")
        bodies = [name for name in _BODIES if raw.get(name) not in (None, False)]
        if len(bodies) > 1:
            raise ValueError(f"a fault rule gives at most one body of its own, not {bodies}")
        if bodies and rule.drop:
            raise ValueError(f"a dropped connection sends no body: 'drop' and {bodies[0]!r} exclude each other")
        if bodies and rule.status is None:
            rule.status = 200
        if rule.status is None and not (rule.drop or rule.delay or rule.trickle or rule.headers):
            raise ValueError("a fault rule needs a 'status', a body, 'drop', 'delay', 'trickle' or 'headers'")
        if rule.method:
            rule.method = rule.method.upper()
        return rule

    @property
    def spent(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"spent": self.spent}


class Faults:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, raw_rules: Any) -> list[FaultRule]:
        """Append rules (a list, or one object); all or none are added."""
        items = raw_rules if isinstance(raw_rules, list) else [raw_rules]
        rules = [FaultRule.parse(item) for item in items]
        self.rules.extend(rules)
        return rules

    def clear(self) -> None:
        self.rules.clear()

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The rule that fires for this request, counting it; None lets the request through."""
        for rule in self.rules:
            matches = path == rule.path if rule.exact else path.startswith(rule.path)
            if rule.spent or not matches or (rule.method and rule.method != method):
                continue
            rule.seen += 1
            if rule.seen > rule.after:
                rule.fired += 1
                return rule
        return None


class FaultMiddleware:
    """Pure ASGI, and outermost: dropping a connection needs the server's own `send`."""

    def __init__(self, app: ASGIApp, faults: Faults, exempt: str = "/_sandbox") -> None:
        self.app = app
        self.faults = faults
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            return await self.app(scope, receive, send)
        rule = self.faults.pick(scope["method"], scope["path"])
        if rule is None:
            return await self.app(scope, receive, send)
        if rule.delay:
            await asyncio.sleep(rule.delay)
        if rule.drop:
            return await _drop(send)
        gone = _disconnected(send)
        if rule.headers or rule.trickle:
            send = _Shaped(send, rule, gone)
        if rule.status is None:
            return await self.app(scope, receive, send)
        headers = {} if rule.retry_after is None else {"Retry-After": f"{rule.retry_after:g}"}  # rule.headers: _Shaped
        if rule.gzip_bomb is not None:
            gzipped = {**_JSON, "Content-Encoding": "gzip", **headers}
            return await _stream(send, rule.status, gzipped, _gzip_bomb(rule.gzip_bomb), gone)
        if rule.endless:
            return await _stream(send, rule.status, {**_JSON, **headers}, _endless(), gone)
        await _response(rule, rule.status, headers)(scope, receive, send)


def _response(rule: FaultRule, status: int, headers: dict[str, str]) -> Response:
    """The rule's own answer with a body held whole: `raw`, `raw_base64`, `body` or the status's reason."""
    if rule.raw is not None:
        return Response(rule.raw.replace("{fired}", str(rule.fired)).encode(), status, headers, _JSON["Content-Type"])
    if rule.raw_base64 is not None:
        return Response(base64.b64decode(rule.raw_base64), status, headers, _JSON["Content-Type"])
    body = _numbered(rule.body, rule.fired) if rule.body is not None else {"message": _reason(status)}
    return JSONResponse(body, status_code=status, headers=headers)


class _Shaped:
    """A `send` that adds the rule's headers to the response and trickles its body out a byte at a time."""

    def __init__(self, send: Send, rule: FaultRule, gone: Callable[[], bool]) -> None:
        self.send, self.rule, self.gone = send, rule, gone

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and self.rule.headers:
            replaced = {name.lower().encode("latin-1") for name in self.rule.headers}
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in replaced]
            headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.rule.headers.items()]
            message = {**message, "headers": headers}
        if message["type"] != "http.response.body" or not self.rule.trickle:
            return await self.send(message)
        body, more = message.get("body", b""), message.get("more_body", False)
        for i in range(len(body)):
            if self.gone():
                return
            await self.send({"type": "http.response.body", "body": body[i : i + 1], "more_body": True})
            await asyncio.sleep(self.rule.trickle)
        await self.send({"type": "http.response.body", "body": b"", "more_body": more})


async def _stream(
    send: Send, status: int, headers: dict[str, str], chunks: Iterator[bytes], gone: Callable[[], bool]
) -> None:
    """A chunked response (no Content-Length) from `chunks`, stopped as soon as the client has gone."""
    raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    for chunk in chunks:
        if gone():
            return
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await asyncio.sleep(0)  # let the server notice a disconnect, and serve other requests meanwhile
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _gzip_bomb(size: int) -> Iterator[bytes]:
    """`size` bytes of JSON (spaces, then `[]`) as a gzip stream, without ever holding `size` bytes.

    Each MiB of spaces is compressed once, alone and ending on a full flush, so the same ~1 KB stands for every
    MiB; the rest and `[]` end the deflate stream, and the trailer carries the CRC and length of the whole.
    """
    block = b" " * _BLOCK
    blocks, rest = divmod(size - 2, _BLOCK)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    segment = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    yield b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # gzip, deflate, no name, no mtime, best compression
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(block, crc)
        yield segment
    tail = b" " * rest + b"[]"
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    yield packer.compress(tail) + packer.flush() + struct.pack("<II", zlib.crc32(tail, crc), size & 0xFFFFFFFF)


def _endless() -> Iterator[bytes]:
    yield b"["
    block = b" " * _BLOCK
    for _ in range(_ENDLESS_CAP // _BLOCK):
        yield block


def _numbered(body: Any, fired: int) -> Any:
    """`body` with `{fired}` in each of its strings replaced by the count."""
    if isinstance(body, str):
        return body.replace("{fired}", str(fired))
    if isinstance(body, list):
        return [_numbered(item, fired) for item in body]
    if isinstance(body, dict):
        return {key: _numbered(value, fired) for key, value in body.items()}
    return body


def _disconnected(send: Send) -> Callable[[], bool]:
    """Whether the client has gone: uvicorn's `send` is a bound method of its request cycle, which knows. On
    another server this never says so (then an endless body ends after a GiB)."""
    cycle = getattr(send, "__self__", None)
    return lambda: bool(getattr(cycle, "disconnected", False))


async def _drop(send: Send) -> None:
    # ASGI has no way to close a connection without answering, but uvicorn's `send` is a bound method of
    # its request cycle, which holds the transport. Once the close has been processed the cycle is marked
    # disconnected and uvicorn sends nothing more.
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.close()
        await asyncio.sleep(0)
        return
    # Another server: start a response and never finish it, which at least breaks the exchange.
    await send({"type": "http.response.start", "status": 500, "headers": []})


def _is_header_map(value: Any) -> bool:
    """Header names that are HTTP tokens, values of printable ASCII (no line breaks to smuggle a header in)."""
    return isinstance(value, dict) and all(
        isinstance(k, str) and _TOKEN.fullmatch(k) and isinstance(v, str) and _VALUE.fullmatch(v)
        for k, v in value.items()
    )


def _is_base64(value: Any) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (TypeError, ValueError, binascii.Error):
        return False
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Injected fault"
