"""Run an iterator one step ahead in a thread, so the next page downloads while this one is written."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from typing import Generic, TypeVar

from canonical.errors import Stopped

T = TypeVar("T")
_END = object()


class Prefetched(Generic[T]):
    """Iterate ``source`` with up to ``depth`` items fetched ahead; exceptions surface in the consumer.

    Use as a context manager: leaving early stops the producer after the item it is fetching.
    """

    def __init__(
        self,
        source: Iterator[T],
        depth: int = 1,
        stop: threading.Event | None = None,
        interrupt: threading.Event | None = None,
    ) -> None:
        self._source = source
        self._items: queue.Queue[object] = queue.Queue(maxsize=depth)
        # Set on leaving: ``source`` may watch it too, to stop requests it has queued (connectors.fetch).
        self._stop = stop or threading.Event()
        # Set from outside (a signal): the consumer stops waiting for the next item and raises ``Stopped``.
        self._interrupt = interrupt or threading.Event()
        self._thread = threading.Thread(target=self._produce, name="prefetch", daemon=True)

    def __enter__(self) -> Prefetched[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        # Unblock a producer waiting for room. One stuck in a slow fetch is a daemon thread: give it a
        # moment, then leave it, since what it fetches would be thrown away anyway.
        deadline = time.monotonic() + 2.0
        while self._thread.is_alive() and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                self._items.get(timeout=0.05)

    def _produce(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put(exc)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        for item in self.polled(0.1):
            if item is None:
                if self._interrupt.is_set():
                    raise Stopped("the run is ending: the next batch was not waited for")
                continue
            yield item

    def polled(self, every: float) -> Iterator[T | None]:
        """The items, and None each time ``every`` seconds pass without one: the consumer may act meanwhile
        (commit what it holds, notice a stop)."""
        while True:
            try:
                item = self._items.get(timeout=every)
            except queue.Empty:
                yield None
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
