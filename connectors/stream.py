"""Streams declared as data, and the reader that walks a listing's pages.

Three shapes, one type:
- a listing whose pages hold the records (Prescrypto, profiles, gauges patients);
- a listing of ids whose records are fetched one by one (``Stream.details``: Particle);
- records that live under each record of another stream (``Stream.parent``: gauges readings, per patient).

The reader bounds a listing whatever its paginator: a page with more records than its size parameter asked
for, a page repeating the previous page's records (a server that ignores the offset, page, link or token it
is sent), a position asked for twice, and a next link or token longer than ``MAX_POSITION_CHARS`` are all a
``BodyError`` raised before the page is yielded, so the stream's cursor stays where the last good page left it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from canonical.errors import BodyError, ListingShifted
from canonical.model import MAX_ID_LENGTH
from connectors.paging import ANCHOR_PARAM, MAX_POSITION_CHARS, URL_PARAM, Page, Paginator, Params

if TYPE_CHECKING:  # a stream is declared without the HTTP stack; only reading it needs a client
    from connectors.client import SourceClient

_UNSTORABLE_KEY = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class Stream:
    name: str
    path: str
    params: Mapping[str, Any]  # the first page's query
    paginator: Paginator
    parse: Callable[[Any], Page]
    key: str  # the record field that identifies a record within the stream
    size_param: str | None = None  # the query parameter that carries the page size
    max_page_size: int | None = None  # the API's documented cap
    details: str | None = None  # the listing holds only ids; each record is GET details.format(id=...)
    integer_key: bool = False  # the key is an integer id: 7, "7" and "007" are one record
    parent: Parent | None = None  # its records live under each stored record of that stream

    def with_page_size(self, size: int) -> Stream:
        if self.size_param is None:
            return self
        if self.max_page_size is not None:
            size = min(size, self.max_page_size)
        return replace(self, params={**self.params, self.size_param: size})

    def record_key(self, record: Mapping[str, Any]) -> str | None:
        return record_key(record.get(self.key) if isinstance(record, Mapping) else None, self.integer_key)

    def listed_key(self, entry: Any) -> str | None:
        """The key of one entry of a listing page: the id itself in a listing of ids, else the record's key."""
        return record_key(entry) if self.details is not None else self.record_key(entry)


@dataclass(frozen=True)
class Parent:
    """A stream whose records live under each record of another stream of the same source (gauges readings
    under each patient): one GET per stored parent, its ``path`` formatted with the parent's key, asking only
    for the records dated on or after the parent's watermark."""

    stream: str  # the stream whose stored records are the parents
    since_param: str  # takes the watermark as YYYY-MM-DD, inclusive
    # A cheap request that any valid token may make: after a 403 on one parent it tells a parent the token may
    # not see (skipped) from a token refused altogether (the stream fails).
    token_check: tuple[str, Mapping[str, Any]]


def record_key(value: Any, integer: bool = False) -> str | None:
    """A key value as text, or None when it is none a database could store (the record is then quarantined
    under a hash of its payload, with ``key_problem``'s reason).

    >>> record_key(1049), record_key(" pat123 "), record_key(""), record_key(True), record_key("007", integer=True)
    ('1049', 'pat123', None, None, '7')
    """
    return _key(value, integer)[0]


def key_problem(value: Any, integer: bool = False) -> str:
    """Why ``record_key`` found no storable key in ``value``: a reason that is true, and quotes nothing.

    >>> key_problem(None), key_problem(True), key_problem("a\\x00b")
    ('is missing', 'is a boolean, not an identifier', 'contains a NUL or an unpaired surrogate')
    >>> key_problem("x" * 300)
    'is longer than 255 characters'
    """
    return _key(value, integer)[1] or "is a usable identifier"


def _key(value: Any, integer: bool = False) -> tuple[str | None, str | None]:
    if value is None:
        return None, "is missing"
    if isinstance(value, bool):
        return None, "is a boolean, not an identifier"
    if isinstance(value, dict | list):
        return None, f"is {'an object' if isinstance(value, dict) else 'a list'}, not an identifier"
    if isinstance(value, int):
        if value.bit_length() > 3 * MAX_ID_LENGTH:  # str() of a huge int is slow, and refused past 4300 digits
            return None, f"is longer than {MAX_ID_LENGTH} characters"
        value = str(value)
    if not isinstance(value, str):
        return None, f"is a {type(value).__name__}, not an identifier"
    key = value.strip()
    if not key:
        return None, "is empty"
    if len(key) > MAX_ID_LENGTH:
        return None, f"is longer than {MAX_ID_LENGTH} characters"
    if _UNSTORABLE_KEY.search(key):
        return None, "contains a NUL or an unpaired surrogate"
    if integer:  # one spelling, the one the mappings give the crosswalk (mappings.normalize.integer_id)
        if not (key.isascii() and key.isdigit()):
            return None, "expected an integer id"
        key = key.lstrip("0") or "0"
    return key, None


def read_pages(client: SourceClient, stream: Stream, params: Params, ahead: int = 1) -> Iterator[tuple[Params, Page]]:
    """Yield ``(params, page)`` from ``params`` to the end, refusing a listing that does not advance or is
    larger than it was asked to be.

    With ``ahead`` > 1 and a paginator that can guess the next page's params before this one arrives (offset,
    page number), up to ``ahead`` pages are requested at once; they are still taken strictly in order, with
    every check above, and a guess the real next page does not confirm is thrown away.
    """
    window = _Window(client, stream, ahead)
    try:
        yield from _read(client, stream, params, window)
    finally:
        window.close()


def _read(client: SourceClient, stream: Stream, params: Params, window: _Window) -> Iterator[tuple[Params, Page]]:
    seen: set[str] = set()
    previous: list[Any] | None = None  # the previous page's entries as compared: keys, or keyless entries
    walked: set[str] = set()  # every entry's identity read so far
    current: Params | None = params
    while current is not None:
        fingerprint = json.dumps(current, sort_keys=True, default=str)
        if fingerprint in seen:
            raise BodyError(client.name, stream.name, f"pagination did not advance (params {_shown(current)})")
        seen.add(fingerprint)
        body = window.body(current)
        try:
            page = stream.parse(body)
        except ValueError as exc:
            raise BodyError(client.name, stream.name, str(exc)) from None
        asked = current.get(stream.size_param) if stream.size_param else None
        if asked is not None and len(page.records) > int(asked):
            raise BodyError(
                client.name,
                stream.name,
                f"a page holds {len(page.records)} records, more than the {asked} asked for ({stream.size_param})",
            )
        if page.has_more and not page.records:  # "more to come" with nothing in hand: a broken page, not the end
            raise BodyError(client.name, stream.name, f"an empty page says there are more (params {_shown(current)})")
        entries = [key if (key := stream.listed_key(entry)) is not None else entry for entry in page.records]
        if entries and _same(entries, previous):
            raise BodyError(
                client.name,
                stream.name,
                f"pagination loop: the page at params {_shown(current)} repeats the previous page's "
                f"{len(entries)} records",
            )
        previous = entries
        page = _anchored(client, stream, current, page, entries)
        fresh = {key for entry in entries[page.overlap :] if (key := _identity(entry)) is not None}
        if fresh and fresh <= walked:  # a cycle of pages (A, B, A, ...), or an offset that wraps around
            raise BodyError(
                client.name,
                stream.name,
                f"pagination loop: the page at params {_shown(current)} holds only records already read",
            )
        walked.update(fresh)
        following = stream.paginator.next(current, page)
        for value in (following or {}).values():
            if isinstance(value, str) and len(value) > MAX_POSITION_CHARS:
                raise BodyError(
                    client.name,
                    stream.name,
                    f"the next page's link or token is {len(value)} characters long, more than "
                    f"{MAX_POSITION_CHARS}: not followed",
                )
        yield current, page
        current = following


def _get(client: SourceClient, stream: Stream, params: Params) -> Any:
    """The body of one page request: a followed next link as it is, else the stream's path with the query."""
    if URL_PARAM in params:
        url = client.link(str(params[URL_PARAM]))
        if url is None:  # it would carry the token to another host, or credentials of its own
            raise BodyError(
                client.name, stream.name, "a next link points to another host or carries credentials: not followed"
            )
        return client.get_json(url, None, stream.name)
    return client.get_json(stream.path, _query(params), stream.name)


def _query(params: Params) -> Params:
    return {k: v for k, v in params.items() if k != ANCHOR_PARAM}  # the anchor is ours, never sent


class _Window:
    """The pages requested ahead: for each page taken, the next pages the paginator guesses are already on
    their way (up to ``ahead`` in all, starting with 2), through the source's one client (its retries and
    rate limit cover them)."""

    def __init__(self, client: SourceClient, stream: Stream, ahead: int) -> None:
        self.client = client
        self.stream = stream
        guess = getattr(stream.paginator, "guess", None)
        self.guess: Callable[[Params], Params | None] | None = guess if ahead > 1 else None
        self.ahead = ahead
        self.size = 2  # pages in flight: doubled while the guesses come true, so a short listing costs little
        self.first = True
        self.pool = ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="page") if self.guess else None
        self.pending: dict[str, Future[Any]] = {}

    def body(self, params: Params) -> Any:
        if self.pool is None or self.guess is None:
            return _get(self.client, self.stream, params)
        if _sent(params) in self.pending:  # the guess came true: the listing is long, look further ahead
            self.size = min(self.ahead, self.size * 2)
        elif not self.first:  # it did not (a short page: the end is near): no guessing past it
            self.size = 1
        self.first = False
        wanted = [params]
        while len(wanted) < self.size and (following := self.guess(wanted[-1])) is not None:
            wanted.append(following)
        keys = [_sent(p) for p in wanted]
        for key in [k for k in self.pending if k not in keys]:  # guesses the listing did not confirm
            self.pending.pop(key).cancel()
        for key, p in zip(keys, wanted, strict=True):
            if key not in self.pending:
                self.pending[key] = self.pool.submit(_get, self.client, self.stream, p)
        return self.pending.pop(keys[0]).result()

    def close(self) -> None:
        for future in self.pending.values():
            future.cancel()
        self.pending.clear()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)


def _sent(params: Params) -> str:
    return json.dumps(_query(params), sort_keys=True, default=str)


def _anchored(client: SourceClient, stream: Stream, params: Params, page: Page, entries: list[Any]) -> Page:
    """The page with its anchor (its last record's key) and, when it was asked to start at the last record
    already seen, the check that it does: raise ``ListingShifted`` otherwise."""
    expected = params.get(ANCHOR_PARAM)
    overlap = 0
    if expected is not None:
        if not entries or _identity(entries[0]) != expected:  # what was there moved: deleted or inserted before
            offset = params.get(getattr(stream.paginator, "offset_param", ""), 0)
            raise ListingShifted(client.name, stream.name, int(offset))
        overlap = 1
    return replace(page, anchor=_identity(entries[-1]) if entries else None, overlap=overlap)


def _identity(entry: Any) -> str | None:
    """What tells one listing entry from another: its key, or for one without a key, a hash of its content."""
    if isinstance(entry, str):
        return entry
    try:
        encoded = json.dumps(entry, sort_keys=True, default=str).encode()
    except (RecursionError, ValueError):
        return None  # no anchor: the next page then starts after it, unchecked
    return f"sha256:{hashlib.sha256(encoded).hexdigest()}"


def _same(entries: list[Any], previous: list[Any] | None) -> bool:
    try:
        return entries == previous
    except RecursionError:  # keyless records nested deeper than a comparison can go: taken for different
        return False


def _shown(params: Params) -> str:
    """Params as an error message may show them: numbers as they are, text (a token, a link that may carry
    credentials) by its length only.

    >>> _shown({"limit": 100, "offset": 200}), _shown({"continuation_token": "s3cret"})
    ('{"limit": 100, "offset": 200}', '{"continuation_token": "<6 characters>"}')
    """
    return json.dumps({k: _shown_value(v) for k, v in params.items()}, sort_keys=True)


def _shown_value(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return f"<{len(value)} characters>" if isinstance(value, str) else f"<{type(value).__name__}>"
