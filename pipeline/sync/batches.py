"""What the runner commits, one batch at a time, and where a later run picks up after each.

- A listing's pages, as they come (``Stream``).
- A listing of ids, each page expanded into its detail records by concurrent GETs (``Stream.details``):
  incremental runs fetch only the ids not stored yet, sweeps fetch them all.
- A fan-out over the parent stream's stored records (``Stream.parent``): one GET per parent, from the parent's
  watermark on incremental runs, everything on sweeps. The checkpoint is the last parent done, so a crashed
  pass resumes after it; the pass ends with an empty checkpoint, so the next pass starts from the first parent.

A listing's next link or continuation token that carries credentials (user info, a query parameter such as
``access_token``, or the source's own token) is followed, but never stored: the checkpoint of its page is the
listing's start (``{}``), so a run resumed from it lists from the first page again. One warning per walk.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog

from canonical.errors import AuthError, BodyError, FetchError, ListingShifted, SourceError
from connectors.client import SourceClient
from connectors.fetch import Skipped, fetch_all, path_for
from connectors.paging import URL_PARAM, Checkpoint, Page, Params, TokenPaginator, credential_in
from connectors.stream import Stream, read_pages

log = structlog.get_logger(__name__)

# keys -> those of them already stored (live); keys -> each key's watermark date
StoredFn = Callable[[list[str]], set[str]]
WatermarkFn = Callable[[list[str]], dict[str, dt.date]]

MAX_REREADS = 3  # times a shifting listing is read again from its start within one run

# The gauges document does not say in which time zone start_date is a day. Asking from the day before the
# latest stored reading's UTC day covers any zone; what comes twice is unchanged and costs no write.
WATERMARK_MARGIN = dt.timedelta(days=1)


@dataclass(frozen=True)
class Batch:
    checkpoint: Checkpoint  # the stream's position once this batch is committed
    records: list[Any]
    listed: list[str] | None = None  # keys the listing named, fetched or not; None: the records' own keys
    total: int | None = None  # records in the whole listing, when the source says
    partial: bool = False  # some parent's records could not be read: the walk did not see the whole stream
    refused: int = 0  # parents the source refused (403) although the token is good: reported on the run
    restart: bool = False  # the listing is read again from its start: what the walk saw so far does not count


def listing_batches(
    client: SourceClient,
    stream: Stream,
    start: Params,
    stored: StoredFn | None,
    concurrency: int,
    stop: threading.Event | None = None,
) -> Iterator[Batch]:
    """The listing's pages from ``start``; with ``stream.details``, each id's record instead of the id.

    ``stored`` (incremental runs) names ids whose details need no fetch; None fetches every one. A stored
    position the source no longer accepts (an expired token or next link: a 4xx on the first request) is
    dropped, and the listing starts over from its first page. So is one whose listing shifted under it
    (records deleted or inserted before the offset): a ``restart`` batch tells the runner to forget what the
    walk saw, and the listing is read again from its first page, at most ``MAX_REREADS`` times. Pages that an
    offset or page number can name before they arrive are requested ``concurrency`` at a time.
    """
    base = dict(stream.params)
    if URL_PARAM in start and client.link(str(start[URL_PARAM])) is None:  # base_url moved to another host
        log.warning(
            "stored next link is on another host or carries credentials; listing from the start",
            source=client.name,
            stream=stream.name,
        )
        start = base
    positions = _Positions(client, stream)
    rereads = 0
    pages = _opened(client, stream, start, base, concurrency)
    while True:
        try:
            for params, page in pages:
                yield _listing_batch(client, stream, params, page, stored, concurrency, stop, positions)
            return
        except ListingShifted:
            rereads += 1
            if rereads > MAX_REREADS:
                raise SourceError(
                    client.name,
                    stream.name,
                    f"the listing kept shifting while it was read ({MAX_REREADS} re-reads from the start): "
                    "nothing was deleted, and the next run reads it again",
                ) from None
            log.warning(
                "the listing shifted under the walk; reading it again from the start",
                source=client.name,
                stream=stream.name,
                reread=rereads,
            )
            yield Batch({}, [], restart=True)
            pages = read_pages(client, stream, base, ahead=concurrency)


def _opened(
    client: SourceClient, stream: Stream, start: Params, base: Params, concurrency: int
) -> Iterator[tuple[Params, Page]]:
    """The listing's pages from ``start``, or from ``base`` when the source refuses the stored position."""
    pages = read_pages(client, stream, start, ahead=concurrency)
    try:
        first = next(pages, None)
    except FetchError as exc:
        if start == base or exc.status is None or not 400 <= exc.status < 500:
            raise
        log.warning(
            "stored position refused; listing from the start", source=client.name, stream=stream.name, status=exc.status
        )
        pages = read_pages(client, stream, base, ahead=concurrency)
        first = next(pages, None)
    if first is not None:
        yield first
        yield from pages


class _Positions:
    """Turns each page's checkpoint into one fit to store, warning once per walk when one is not."""

    def __init__(self, client: SourceClient, stream: Stream) -> None:
        self.client = client
        self.stream = stream
        paginator = stream.paginator
        self.own_param = paginator.token_param if isinstance(paginator, TokenPaginator) else None
        self.warned = False

    def storable(self, checkpoint: Checkpoint) -> Checkpoint:
        for key, value in checkpoint.items():
            if not isinstance(value, str):
                continue
            reason = credential_in(value, self.client.secrets, self.own_param)
            if reason is None:
                continue
            if not self.warned:
                log.warning(
                    "a next link or token carries credentials: not stored (a resumed run lists from the start)",
                    source=self.client.name,
                    stream=self.stream.name,
                    position=key,
                    reason=reason,
                )
                self.warned = True
            return {}
        return checkpoint


def _listing_batch(
    client: SourceClient,
    stream: Stream,
    params: Params,
    page: Any,
    stored: StoredFn | None,
    concurrency: int,
    stop: threading.Event | None,
    positions: _Positions,
) -> Batch:
    checkpoint = positions.storable(stream.paginator.checkpoint(params, page))
    if stream.details is None:
        return Batch(checkpoint, page.new_records, total=page.total)
    keyed = [(stream.listed_key(entry), entry) for entry in page.new_records]
    ids = list(dict.fromkeys(key for key, _ in keyed if key is not None))
    unusable = [entry for key, entry in keyed if key is None]  # quarantined as they are
    known = stored(ids) if stored is not None and ids else set()
    wanted = [key for key in ids if key not in known]
    requests = [(path_for(stream.details, key), None) for key in wanted]
    bodies = fetch_all(client, requests, stream.name, concurrency, stop=stop)
    gone = {key for key, body in zip(wanted, bodies, strict=True) if isinstance(body, Skipped)}
    records = [body for body in bodies if not isinstance(body, Skipped)]
    return Batch(checkpoint, records + unusable, [key for key in ids if key not in gone], page.total)


def fan_out_batches(
    client: SourceClient,
    stream: Stream,
    parents: Iterable[list[str]],
    watermarks: WatermarkFn | None,
    concurrency: int,
    stop: threading.Event | None = None,
) -> Iterator[Batch]:
    """Each chunk of parent keys' records, fetched concurrently; ``watermarks`` None fetches everything.

    A parent deleted since it was stored (404), or one the token may not see (403, while the token itself is
    good), is skipped with a warning; the batch is then partial, so no deletion is decided from it. A pass in
    which every parent answered 403 fails: the token lacks the scope, whatever the token check says.
    """
    parent = stream.parent
    assert parent is not None, "a fan-out is a stream with a parent"
    token_checked = False
    readable = forbidden = 0
    for keys in parents:
        since = watermarks(keys) if watermarks is not None else {}
        requests = [
            (path_for(stream.path, key), {parent.since_param: _start_date(since[key])} if key in since else None)
            for key in keys
        ]
        records: list[Any] = []
        skipped = False
        refused = 0
        bodies = fetch_all(client, requests, stream.name, concurrency, skip=(403, 404), stop=stop)
        for key, body in zip(keys, bodies, strict=True):
            if isinstance(body, Skipped):
                if body.status == 403:
                    refused += 1
                    if not token_checked:
                        _check_token(client, stream, key)
                        token_checked = True
                log.warning("parent skipped", source=client.name, stream=stream.name, parent=key, status=body.status)
                skipped = True
                continue
            readable += 1
            try:
                records.extend(stream.parse(body).records)
            except ValueError as exc:
                raise BodyError(client.name, stream.name, f"parent {key}: {exc}") from None
        forbidden += refused
        yield Batch({"after": keys[-1]}, records, partial=skipped, refused=refused)
    if forbidden and not readable:
        raise AuthError(client.name, stream.name, 403, f"all {forbidden} parents refused")
    yield Batch({}, [])  # the pass is over: the next one starts from the first parent


def _start_date(watermark: dt.date) -> str:
    """The start_date for a parent's watermark: the margin earlier, and never before the calendar's first day.

    >>> _start_date(dt.date(2023, 10, 2)), _start_date(dt.date.min)
    ('2023-10-01', '0001-01-01')
    """
    return (watermark - WATERMARK_MARGIN if watermark > dt.date.min + WATERMARK_MARGIN else dt.date.min).isoformat()


def _check_token(client: SourceClient, stream: Stream, parent: str) -> None:
    """After a 403 on one parent: raise if the token itself is refused, return if it is only that parent."""
    assert stream.parent is not None
    path, params = stream.parent.token_check
    try:
        client.get_json(path, dict(params), stream.name)
    except AuthError:
        raise
    except SourceError as exc:
        raise FetchError(
            client.name, stream.name, f"parent {parent}: HTTP 403, and the token check failed: {exc}"
        ) from None
