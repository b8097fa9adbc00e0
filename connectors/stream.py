"""Streams declared as data, and the reader that walks a listing's pages.

Three shapes:
- a listing whose pages hold the records (Prescrypto, profiles, gauges patients);
- a listing of ids whose records are fetched one by one (``Stream.details``: Particle);
- records that live under each record of another stream (``FanOut``: gauges readings, per patient).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from canonical.errors import BodyError
from canonical.model import MAX_ID_LENGTH
from connectors.client import SourceClient
from connectors.paging import URL_PARAM, Page, Paginator, Params

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

    def with_page_size(self, size: int) -> Stream:
        if self.size_param is None:
            return self
        if self.max_page_size is not None:
            size = min(size, self.max_page_size)
        return replace(self, params={**self.params, self.size_param: size})

    def record_key(self, record: Mapping[str, Any]) -> str | None:
        return record_key(record.get(self.key) if isinstance(record, Mapping) else None)


@dataclass(frozen=True)
class FanOut:
    """Records that live under each record of another stream of the same source: one GET per parent,
    ``path.format(id=parent key)``, asking only for records dated on or after the parent's watermark."""

    name: str
    parent: str  # the stream whose stored records are the parents
    path: str
    parse: Callable[[Any], Page]
    key: str
    since_param: str  # takes the watermark as YYYY-MM-DD, inclusive
    # A cheap request that any valid token may make: after a 403 on one parent it tells a parent the token may
    # not see (skipped) from a token refused altogether (the stream fails).
    token_check: tuple[str, Mapping[str, Any]]

    def record_key(self, record: Mapping[str, Any]) -> str | None:
        return record_key(record.get(self.key) if isinstance(record, Mapping) else None)


def record_key(value: Any) -> str | None:
    """A key value as text, or None when it is none a database could store (the record is then quarantined
    under a hash of its payload, with ``key_problem``'s reason).

    >>> record_key(1049), record_key(" pat123 "), record_key(""), record_key(True)
    ('1049', 'pat123', None, None)
    """
    return _key(value)[0]


def key_problem(value: Any) -> str:
    """Why ``record_key`` found no storable key in ``value``: a reason that is true, and quotes nothing.

    >>> key_problem(None), key_problem(True), key_problem("a\\x00b")
    ('is missing', 'is a boolean, not an identifier', 'contains a NUL or an unpaired surrogate')
    >>> key_problem("x" * 300)
    'is longer than 255 characters'
    """
    return _key(value)[1] or "is a usable identifier"


def _key(value: Any) -> tuple[str | None, str | None]:
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
    return key, None


def read_pages(client: SourceClient, stream: Stream, params: Params) -> Iterator[tuple[Params, Page]]:
    """Yield ``(params, page)`` from ``params`` to the end, refusing a paginator that does not advance."""
    seen: set[str] = set()
    current: Params | None = params
    while current is not None:
        fingerprint = json.dumps(current, sort_keys=True, default=str)
        if fingerprint in seen:
            raise BodyError(client.name, stream.name, f"pagination did not advance (params {fingerprint})")
        seen.add(fingerprint)
        if URL_PARAM in current:
            url = client.link(str(current[URL_PARAM]))
            if url is None:  # it would carry the token to another host
                raise BodyError(client.name, stream.name, "a next link points to another host: not followed")
            body = client.get_json(url, None, stream.name)
        else:
            body = client.get_json(stream.path, current, stream.name)
        try:
            page = stream.parse(body)
        except ValueError as exc:
            raise BodyError(client.name, stream.name, str(exc)) from None
        if page.has_more and not page.records:  # "more to come" with nothing in hand: a broken page, not the end
            raise BodyError(client.name, stream.name, f"an empty page says there are more (params {fingerprint})")
        yield current, page
        current = stream.paginator.next(current, page)
