"""Request counts, so a test can assert what a sync fetched (e.g. that a re-sync asked for one page only), and
the most requests that were in flight at once (``max_in_flight``: how many pages a client asked for ahead).

Counted per API prefix and per path with ids folded (`/prescrypto/api/v2/patient/{id}`) and the trailing
slash dropped, for every request except the control routes, faulted ones included.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

_ID = re.compile(r"^(?!v\d+$).*\d")  # a segment with a digit is an id, except a version like "v2"


class RequestStats:
    def __init__(self) -> None:
        self.paths: Counter[str] = Counter()
        self.in_flight = 0  # requests of this generation (since the last clear) still being answered
        self.max_in_flight = 0
        self.generation = 0  # requests an earlier test left running (a trickled body) do not count

    def count(self, path: str) -> None:
        segments = [s for s in path.split("/") if s]
        self.paths["/" + "/".join("{id}" if _ID.match(s) else s for s in segments)] += 1

    def clear(self) -> None:
        self.paths.clear()
        self.generation += 1
        self.in_flight = self.max_in_flight = 0

    def to_json(self) -> dict[str, Any]:
        prefixes: Counter[str] = Counter()
        for path, n in self.paths.items():
            prefixes["/" + path.split("/")[1]] += n
        return {
            "total": sum(self.paths.values()),
            "prefixes": dict(prefixes),
            "paths": dict(self.paths),
            "max_in_flight": self.max_in_flight,
        }


class StatsMiddleware:
    def __init__(self, app: ASGIApp, stats: RequestStats, exempt: str = "/_sandbox") -> None:
        self.app = app
        self.stats = stats
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            return await self.app(scope, receive, send)
        stats = self.stats
        stats.count(scope["path"])
        generation = stats.generation
        stats.in_flight += 1  # one event loop: no lock needed
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            await self.app(scope, receive, send)
        finally:
            if stats.generation == generation:
                stats.in_flight -= 1
