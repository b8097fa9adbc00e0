"""The sandbox in this process: an httpx transport that hands requests to its ASGI app.

For tests of the runner that need no server process: ``SourceClient(..., transport=in_process(app))``, or
``RunOptions(transport=...)``. The app runs on an event loop of its own in a daemon thread, so the synchronous
client can call it from any thread (the runner's prefetch thread included). Responses are read whole: faults
that depend on a real connection (dropped connections, trickled or endless bodies) need ``running_sandbox``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx


class InProcessTransport(httpx.BaseTransport):
    def __init__(self, app: Any) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sandbox-in-process", daemon=True)
        self._thread.start()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        reply = asyncio.run_coroutine_threadsafe(self._send(forwarded), self._loop)
        status, headers, content = reply.result(timeout=120)
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def _send(self, request: httpx.Request) -> tuple[int, httpx.Headers, bytes]:
        response = await self._asgi.handle_async_request(request)
        content = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
        return response.status_code, response.headers, content

    def close(self) -> None:
        """Nothing: one transport serves every source's client in turn, and each closes it when done. The loop's
        thread is a daemon; ``shutdown`` ends it earlier."""

    def shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def in_process(app: Any) -> InProcessTransport:
    """A transport to ``app`` (``sandbox.app.create_app(...)``) that needs no server."""
    return InProcessTransport(app)
