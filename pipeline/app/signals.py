"""SIGINT/SIGTERM as a request to stop after the page in hand; a second SIGINT aborts at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@contextmanager
def graceful_stop(stop: threading.Event) -> Iterator[threading.Event]:
    """Within the block, the first SIGINT/SIGTERM sets ``stop``; a second SIGINT raises KeyboardInterrupt."""

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.warning("stopping: finishing the page in hand (Ctrl-C again to abort)", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
