"""Pages and paginators.

A paginator is stateless: given the params a page was fetched with and the parsed page, it says which params
fetch the next page (``next``) and where a later run should pick up after this page (``checkpoint``). A
checkpoint is a small dict with the cursor keys the README documents (``offset``, ``page``, ``continuation_token``,
``next_url``); ``resume`` turns it back into params.

A next link or token is followed at most ``MAX_POSITION_CHARS`` long, and ``credential_in`` tells one that
carries credentials, which is followed but never stored (see ``pipeline.sync.batches``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote_plus, urlsplit

Params = dict[str, Any]
Checkpoint = dict[str, Any]

URL_PARAM = "__url__"  # params holding only this fetch that absolute URL (a followed ``next`` link) as it is
# Params holding this (never sent) expect the page to start with the record of that key: the last one already
# seen, asked for again so that a listing that shifted under the walk shows it (see OffsetPaginator).
ANCHOR_PARAM = "__anchor__"
MAX_POSITION_CHARS = 2048  # a longer next link or continuation token is refused

# Query parameters that carry a credential rather than a position (compared in lower case, "-" as "_").
CREDENTIAL_PARAMS = frozenset(
    {
        "token",
        "access_token",
        "auth_token",
        "id_token",
        "refresh_token",
        "api_key",
        "apikey",
        "key",
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "signature",
        "sig",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "x_amz_credential",
        "x_amz_security_token",
        "x_amz_signature",
        "x_goog_credential",
        "x_goog_signature",
    }
)
_SEPARATOR = re.compile(r"[-.\s]")


def credential_in(position: str, secrets: Collection[str] = (), own_param: str | None = None) -> str | None:
    """What makes a next link or continuation token unfit to store, or None: user info (``user:pw@``), a query
    parameter named like a credential (other than ``own_param``, the stream's own token parameter), also in a
    link nested in a parameter, or one of ``secrets`` (the source's token) anywhere in it, URL-decoded or not.
    Only names are said, never values.

    >>> credential_in("http://h/patients/?page=2"), credential_in("http://h/p/?page=2&Access-Token=x")
    (None, "a query parameter named 'Access-Token'")
    >>> credential_in("http://u:pw@h/p/"), credential_in("opaque%2Ds3cret%2Dtoken", secrets=["s3cret-token"])
    ('user info', "the source's token")
    >>> credential_in("http://h/p/?token=t2", own_param="token") is None
    True
    """
    decoded = _decoded(position)
    if any(secret in text for secret in secrets for text in decoded):
        return "the source's token"
    return _named_credential(decoded, own_param, depth=3)


def _decoded(text: str) -> list[str]:
    """``text`` and its URL-decoded forms (encoded once, twice or three times)."""
    forms = [text]
    for _ in range(3):
        step = unquote_plus(forms[-1])
        if step == forms[-1]:
            break
        forms.append(step)
    return forms


def _named_credential(texts: list[str], own_param: str | None, depth: int) -> str | None:
    for text in texts:
        try:
            parts = urlsplit(text)
        except ValueError:
            continue
        if "@" in parts.netloc:
            return "user info"
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if _SEPARATOR.sub("_", name.strip().lower()) in CREDENTIAL_PARAMS and name != own_param:
                return f"a query parameter named {name[:40]!r}"
            if depth > 1 and (inner := _named_credential([value], own_param, depth - 1)):
                return inner  # a link nested in a parameter
    return None


@dataclass(frozen=True)
class Page:
    """One parsed response: its records, and what the body itself says about a next page.

    ``has_more`` is None when the body does not say (a bare list); ``next_token`` carries a continuation token
    or a next-page URL, whichever the API uses.
    """

    records: list[dict[str, Any]]
    has_more: bool | None = None
    next_token: str | None = None
    total: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Set by the reader (connectors.stream.read_pages): the key of the last record, and how many leading
    # records were seen on the page before (the anchor asked for again), which are not new.
    anchor: str | None = None
    overlap: int = 0

    @property
    def new_records(self) -> list[dict[str, Any]]:
        return self.records[self.overlap :]


class Paginator(Protocol):
    def next(self, params: Params, page: Page) -> Params | None: ...
    def checkpoint(self, params: Params, page: Page) -> Checkpoint: ...
    def resume(self, params: Params, checkpoint: Checkpoint) -> Params: ...


@dataclass(frozen=True)
class OffsetPaginator:
    """``limit``/``offset``: a short page, or an envelope saying there is no next, ends the stream.

    The checkpoint is the offset just past the last record received, with that record's key (``anchor``; a hash
    of the record for one without a key), so an
    incremental run fetches only records appended since (an offset API cannot reveal updates or deletions: the
    full sweep does that). Each next page, and a resumed run's first, starts one record early, at the anchor:
    if the record there is another, records were deleted or inserted before the offset, and the reader says so
    (``ListingShifted``) instead of skipping or repeating what moved.

    >>> p = OffsetPaginator()
    >>> p.next({"limit": 2, "offset": 0}, Page([{}, {}], anchor="b"))
    {'limit': 2, 'offset': 1, '__anchor__': 'b'}
    >>> p.checkpoint({"limit": 2, "offset": 1}, Page([{}, {}], anchor="c", overlap=1))
    {'offset': 3, 'anchor': 'c'}
    >>> p.resume({"limit": 2, "offset": 0}, {"offset": 3, "anchor": "c"})
    {'limit': 2, 'offset': 2, '__anchor__': 'c'}
    """

    offset_param: str = "offset"
    limit_param: str = "limit"
    overlap: bool = True

    def next(self, params: Params, page: Page) -> Params | None:
        limit = int(params[self.limit_param])
        if page.has_more is False or not page.records:
            return None
        anchored = self.overlap and page.anchor is not None and limit > 1
        # Anchored, a short page is not taken for the last (a server may cap the page size below what was asked):
        # the end is a page that brings nothing new. That costs one request per walk.
        last = len(page.records) <= page.overlap if anchored else len(page.records) < limit
        if page.has_more is None and last:
            return None
        end = self._offset(params) + len(page.records)
        return self._at(params, end, page.anchor if anchored else None)

    def guess(self, params: Params) -> Params:
        """The next page's params if this one comes full (a reader may request it before this one arrives)."""
        full = self._offset(params) + int(params[self.limit_param])
        return self._at(params, full, "" if self.overlap and int(params[self.limit_param]) > 1 else None)

    def checkpoint(self, params: Params, page: Page) -> Checkpoint:
        end = self._offset(params) + len(page.records)
        return {"offset": end, "anchor": page.anchor} if self.overlap and page.anchor is not None else {"offset": end}

    def resume(self, params: Params, checkpoint: Checkpoint) -> Params:
        anchor = checkpoint.get("anchor")
        return self._at(params, int(checkpoint.get("offset", 0)), anchor if isinstance(anchor, str) else None)

    def _offset(self, params: Params) -> int:
        return int(params.get(self.offset_param, 0))

    def _at(self, params: Params, end: int, anchor: str | None) -> Params:
        """Params for the page after ``end``: from the anchor, one record early, when there is one."""
        base = {k: v for k, v in params.items() if k != ANCHOR_PARAM}
        if self.overlap and anchor is not None and end > 0:
            return {**base, self.offset_param: end - 1, ANCHOR_PARAM: anchor}
        return {**base, self.offset_param: end}


@dataclass(frozen=True)
class PageNumberPaginator:
    """``page`` (from ``first``) / ``page_size``: an empty or short page ends the stream.

    A short last page is checkpointed as itself, because records appended later land on it.
    """

    page_param: str = "page"
    size_param: str = "page_size"
    first: int = 1

    def next(self, params: Params, page: Page) -> Params | None:
        if page.has_more is False or len(page.records) < int(params[self.size_param]):
            return None
        return {**params, self.page_param: int(params.get(self.page_param, self.first)) + 1}

    def guess(self, params: Params) -> Params:
        """The next page's params if this one comes full (a reader may request it before this one arrives)."""
        return {**params, self.page_param: int(params.get(self.page_param, self.first)) + 1}

    def checkpoint(self, params: Params, page: Page) -> Checkpoint:
        current = int(params.get(self.page_param, self.first))
        full = len(page.records) >= int(params[self.size_param])
        return {"page": current + 1 if full else current}

    def resume(self, params: Params, checkpoint: Checkpoint) -> Params:
        return {**params, self.page_param: int(checkpoint.get("page", self.first))}


@dataclass(frozen=True)
class OnePage:
    """A response that is the whole answer (a parent's records): no next page, nothing to resume from."""

    def next(self, params: Params, page: Page) -> Params | None:
        return None

    def checkpoint(self, params: Params, page: Page) -> Checkpoint:
        return {}

    def resume(self, params: Params, checkpoint: Checkpoint) -> Params:
        return dict(params)


@dataclass(frozen=True)
class TokenPaginator:
    """A continuation token in the body, passed back as a query parameter; none (or empty) ends the stream.

    After the last page the checkpoint is empty: the next run lists from the start.
    """

    token_param: str = "continuation_token"

    def next(self, params: Params, page: Page) -> Params | None:
        if not page.next_token:
            return None
        return {**params, self.token_param: page.next_token}

    def checkpoint(self, params: Params, page: Page) -> Checkpoint:
        return {"continuation_token": page.next_token} if page.next_token else {}

    def resume(self, params: Params, checkpoint: Checkpoint) -> Params:
        token = checkpoint.get("continuation_token")
        return {**params, self.token_param: token} if token else dict(params)


@dataclass(frozen=True)
class NextUrlPaginator:
    """Follows an absolute ``next`` URL from the body (a DRF envelope); a bare list is one page."""

    def next(self, params: Params, page: Page) -> Params | None:
        return {URL_PARAM: page.next_token} if page.next_token else None

    def checkpoint(self, params: Params, page: Page) -> Checkpoint:
        return {"next_url": page.next_token} if page.next_token else {}

    def resume(self, params: Params, checkpoint: Checkpoint) -> Params:
        url = checkpoint.get("next_url")
        return {URL_PARAM: url} if url else dict(params)
