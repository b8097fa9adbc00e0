"""Fault injection in front of every simulated API: error statuses, Retry-After, slow and dropped responses.

A rule, as posted to `/_sandbox/faults`:

    {"path": "/prescrypto/api/v2/patient/",  # matches request paths that start with this
     "status": 429,                          # answer with this status (JSON {"message": <reason>})
     "times": 2,                             # fire this many times, then the rule is spent (null: forever)
     "retry_after": 1,                       # optional: a Retry-After header, in seconds
     "delay": 0.5,                           # optional: wait this long first (alone: a slow success)
     "drop": true,                           # optional: close the connection without any response
     "after": 3,                             # optional: let the first 3 matching requests through
     "method": "GET",                        # optional: only this method
     "body": {...}}                          # optional: answer with this JSON instead

Rules are tried in the order posted; the first one that fires decides the request. `/_sandbox` itself is
never faulted, so a test can always clean up.
"""

from __future__ import annotations

import asyncio
import http
from dataclasses import asdict, dataclass
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass
class FaultRule:
    path: str
    status: int | None = None
    times: int | None = 1
    retry_after: float | None = None
    delay: float = 0.0
    drop: bool = False
    after: int = 0
    method: str | None = None
    body: Any = None
    seen: int = 0  # matching requests, fired or not
    fired: int = 0

    @classmethod
    def parse(cls, raw: Any) -> FaultRule:
        """A rule from its JSON form; ValueError names what is wrong."""
        if not isinstance(raw, dict):
            raise ValueError(f"a fault rule is a JSON object, not {raw!r}")
        unknown = set(raw) - {"path", "status", "times", "retry_after", "delay", "drop", "after", "method", "body"}
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
            ("method", rule.method is None or isinstance(rule.method, str)),
        ):
            if not ok:
                raise ValueError(f"invalid fault rule {name!r}: {getattr(rule, name)!r}")
        if rule.status is None and not rule.drop and not rule.delay:
            raise ValueError("a fault rule needs a 'status', 'drop' or 'delay'")
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
            if rule.spent or not path.startswith(rule.path) or (rule.method and rule.method != method):
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
        if rule.status is None:
            return await self.app(scope, receive, send)
        headers = {} if rule.retry_after is None else {"Retry-After": f"{rule.retry_after:g}"}
        body = rule.body if rule.body is not None else {"message": _reason(rule.status)}
        await JSONResponse(body, status_code=rule.status, headers=headers)(scope, receive, send)


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Injected fault"
