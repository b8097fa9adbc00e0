"""Pages and paginators.

A paginator is stateless: given the params a page was fetched with and the parsed page, it says which params
fetch the next page (``next``) and where a later run should pick up after this page (``checkpoint``). A
checkpoint is a small dict with the DESIGN cursor keys (``offset``, ``page``, ``continuation_token``,
``next_url``); ``resume`` turns it back into params. A next link or token is followed at most
``MAX_POSITION_CHARS`` long.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Params = dict[str, Any]
Checkpoint = dict[str, Any]

URL_PARAM = "__url__"  # params holding only this fetch that absolute URL (a followed ``next`` link) as it is
MAX_POSITION_CHARS = 2048  # a longer next link or continuation token is refused


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


class Paginator(Protocol):
    def next(self, params: Params, page: Page) -> Params | None: ...
    def checkpoint(self, params: Params, page: Page) -> Checkpoint: ...
    def resume(self, params: Params, checkpoint: Checkpoint) -> Params: ...


@dataclass(frozen=True)
class OffsetPaginator:
    """``limit``/``offset``: a short page, or an envelope saying there is no next, ends the stream.

    The checkpoint is the offset just past the last record received, so an incremental run fetches only
    records appended since (an offset API cannot reveal updates or deletions: the full sweep does that).
    """

    offset_param: str = "offset"
    limit_param: str = "limit"

    def next(self, params: Params, page: Page) -> Params | None:
        limit = int(params[self.limit_param])
        if page.has_more is False or not page.records or (page.has_more is None and len(page.records) < limit):
            return None
        return {**params, self.offset_param: int(params.get(self.offset_param, 0)) + len(page.records)}

    def checkpoint(self, params: Params, page: Page) -> Checkpoint:
        return {"offset": int(params.get(self.offset_param, 0)) + len(page.records)}

    def resume(self, params: Params, checkpoint: Checkpoint) -> Params:
        return {**params, self.offset_param: int(checkpoint.get("offset", 0))}


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

    def checkpoint(self, params: Params, page: Page) -> Checkpoint:
        current = int(params.get(self.page_param, self.first))
        full = len(page.records) >= int(params[self.size_param])
        return {"page": current + 1 if full else current}

    def resume(self, params: Params, checkpoint: Checkpoint) -> Params:
        return {**params, self.page_param: int(checkpoint.get("page", self.first))}


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
