"""Many GETs to one source at once, within a bound: Particle's detail records, gauges' per-patient readings.

Every request goes through the source's one client, so its retries and its rate limit cover them all.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from canonical.errors import AuthError, FetchError, Stopped
from connectors.client import SourceClient
from connectors.paging import Params


@dataclass(frozen=True)
class Skipped:
    """A request the caller chose to survive: 404 (deleted after it was listed), or 403 for one record."""

    status: int
    reason: str


def path_for(template: str, key: str) -> str:
    """``template`` with the key put in as one path segment, whatever characters it holds.

    >>> path_for("/api/v1/patients/{id}", "a/b c")
    '/api/v1/patients/a%2Fb%20c'
    """
    return template.format(id=quote(key, safe=""))


def fetch_all(
    client: SourceClient,
    requests: Sequence[tuple[str, Params | None]],
    stream: str,
    concurrency: int,
    skip: Collection[int] = (404,),
    stop: threading.Event | None = None,
) -> list[Any]:
    """The JSON bodies of ``(path, params)`` GETs, in order; a ``Skipped`` where the status is in ``skip``.

    On any other failure no request of the batch starts any more, and the first error is raised once the
    requests already in flight have finished. Once ``stop`` is set (the run is ending) no request starts
    either: the batch raises ``Stopped`` instead of holding the process until the queue drains.
    """

    def one(request: tuple[str, Params | None]) -> Any:
        if stop is not None and stop.is_set():
            raise Stopped(f"{client.name}/{stream}: the run is ending: request not sent")
        try:
            return client.get_json(request[0], request[1], stream)
        except (AuthError, FetchError) as exc:
            if exc.status is not None and exc.status in skip:
                return Skipped(exc.status, str(exc))
            raise

    if concurrency <= 1 or len(requests) <= 1:
        return [one(request) for request in requests]

    # Workers check this flag themselves: waking the caller to cancel the queue takes long enough for the
    # idle workers to send several more requests.
    failed = threading.Event()
    errors: list[BaseException] = []

    def guarded(request: tuple[str, Params | None]) -> Any:
        if failed.is_set():
            return None  # never read: the batch raises errors[0]
        try:
            return one(request)
        except BaseException as exc:
            errors.append(exc)
            failed.set()
            raise

    with ThreadPoolExecutor(max_workers=min(concurrency, len(requests)), thread_name_prefix="fetch") as pool:
        futures = [pool.submit(guarded, request) for request in requests]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:  # Ctrl-C included: nothing more is sent
            failed.set()
            raise
        finally:
            if failed.is_set():
                for future in futures:
                    future.cancel()
    if errors:
        raise errors[0]
    return [future.result() for future in futures]
