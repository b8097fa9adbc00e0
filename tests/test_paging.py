"""Paginators and body parsers, table-driven: what comes next, where a later run resumes, and loop refusal."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from canonical.errors import BodyError, ListingShifted
from connectors.bodies import parse_list_or_drf, parse_list_or_keyed
from connectors.client import SourceClient
from connectors.paging import (
    URL_PARAM,
    NextUrlPaginator,
    OffsetPaginator,
    Page,
    PageNumberPaginator,
    TokenPaginator,
    credential_in,
)
from connectors.stream import Stream, read_pages


def recs(n: int) -> list[dict[str, Any]]:
    return [{"id": i} for i in range(n)]


@pytest.mark.parametrize(
    ("paginator", "params", "page", "expected_next", "expected_checkpoint"),
    [
        # offset: a full bare-list page continues; a short one ends; the checkpoint is just past the last record
        (OffsetPaginator(), {"limit": 3, "offset": 0}, Page(recs(3)), {"limit": 3, "offset": 3}, {"offset": 3}),
        (OffsetPaginator(), {"limit": 3, "offset": 6}, Page(recs(2)), None, {"offset": 8}),
        (OffsetPaginator(), {"limit": 3, "offset": 9}, Page([]), None, {"offset": 9}),
        # an envelope's next decides, whatever the page length (a capped limit returns fewer than asked)
        (
            OffsetPaginator(),
            {"limit": 200, "offset": 0},
            Page(recs(100), has_more=True),
            {"limit": 200, "offset": 100},
            {"offset": 100},
        ),
        (OffsetPaginator(), {"limit": 3, "offset": 0}, Page(recs(3), has_more=False), None, {"offset": 3}),
        # page numbers: a short last page is checkpointed as itself (appended records land on it)
        (PageNumberPaginator(), {"page": 1, "page_size": 2}, Page(recs(2)), {"page": 2, "page_size": 2}, {"page": 2}),
        (PageNumberPaginator(), {"page": 4, "page_size": 2}, Page(recs(1)), None, {"page": 4}),
        (PageNumberPaginator(), {"page": 5, "page_size": 2}, Page([]), None, {"page": 5}),
        # continuation tokens: none, or empty, ends; the last page's checkpoint restarts the listing
        (
            TokenPaginator(),
            {},
            Page(recs(2), next_token="t1"),
            {"continuation_token": "t1"},
            {"continuation_token": "t1"},
        ),
        (
            TokenPaginator("cursor"),
            {"cursor": "t1"},
            Page(recs(2), next_token="t2"),
            {"cursor": "t2"},
            {"continuation_token": "t2"},
        ),
        (TokenPaginator(), {"continuation_token": "t1"}, Page(recs(1), next_token=""), None, {}),
        (TokenPaginator(), {"continuation_token": "t1"}, Page(recs(1)), None, {}),
        # next URLs
        (
            NextUrlPaginator(),
            {},
            Page(recs(1), next_token="http://h/p?page=2"),
            {URL_PARAM: "http://h/p?page=2"},
            {"next_url": "http://h/p?page=2"},
        ),
        (NextUrlPaginator(), {}, Page(recs(1)), None, {}),
    ],
)
def test_next_and_checkpoint(paginator: Any, params: dict, page: Page, expected_next: Any, expected_checkpoint: dict):
    assert paginator.next(params, page) == expected_next
    assert paginator.checkpoint(params, page) == expected_checkpoint


@pytest.mark.parametrize(
    ("paginator", "base", "checkpoint", "expected"),
    [
        (OffsetPaginator(), {"limit": 100, "offset": 0}, {"offset": 937}, {"limit": 100, "offset": 937}),
        (OffsetPaginator(), {"limit": 100, "offset": 0}, {}, {"limit": 100, "offset": 0}),
        (PageNumberPaginator(), {"page": 1, "page_size": 50}, {"page": 7}, {"page": 7, "page_size": 50}),
        (TokenPaginator("ct"), {}, {"continuation_token": "abc"}, {"ct": "abc"}),
        (TokenPaginator(), {}, {}, {}),
        (NextUrlPaginator(), {}, {"next_url": "http://h/x"}, {URL_PARAM: "http://h/x"}),
    ],
)
def test_resume(paginator: Any, base: dict, checkpoint: dict, expected: dict):
    assert paginator.resume(base, checkpoint) == expected


@pytest.mark.parametrize(
    ("body", "records", "has_more", "total"),
    [
        ([{"id": 1}], [{"id": 1}], None, None),
        ({"count": 2, "next": "http://x/?offset=1", "previous": None, "results": [{"id": 1}]}, [{"id": 1}], True, 2),
        ({"count": 1, "next": None, "previous": None, "results": [{"id": 1}]}, [{"id": 1}], False, 1),
    ],
)
def test_parse_list_or_drf(body: Any, records: list, has_more: Any, total: Any):
    page = parse_list_or_drf(body)
    assert (page.records, page.has_more, page.total) == (records, has_more, total)


@pytest.mark.parametrize("body", [{"message": "Invalid Token"}, "text", 3, {"results": "nope"}])
def test_parse_list_or_drf_refuses_other_shapes(body: Any):
    with pytest.raises(ValueError):
        parse_list_or_drf(body)


@pytest.mark.parametrize(
    "body", [[{"id": 1}], {"patients": [{"id": 1}]}, {"data": [{"id": 1}]}, {"results": [{"id": 1}]}]
)
def test_parse_list_or_keyed(body: Any):
    assert parse_list_or_keyed("patients", "data", "results")(body).records == [{"id": 1}]


def test_reader_refuses_a_token_that_does_not_advance():
    served = iter(range(100))

    def handler(request: httpx.Request) -> httpx.Response:  # new records each time, so not a repeated page
        return httpx.Response(200, json={"items": [{"id": next(served)}], "token": "same"})

    stream = Stream(
        name="s",
        path="/x",
        params={},
        paginator=TokenPaginator(),
        parse=lambda b: Page(b["items"], next_token=b["token"]),
        key="id",
    )
    client = SourceClient("src", "http://test", {}, transport=httpx.MockTransport(handler))
    pages = read_pages(client, stream, {})
    next(pages)
    next(pages)  # first use of token "same"
    with pytest.raises(BodyError, match="src/s: pagination did not advance"):
        next(pages)


@pytest.mark.parametrize(
    ("position", "own_param", "reason"),
    [
        ("http://h/patients/?page=2", None, None),
        ("http://h/patients/?page=2&page_token=abc", None, None),  # a position, not a credential
        ("opaque-token-abc123", None, None),
        ("http://h/patients/?page=2&token=abc", None, "a query parameter named 'token'"),
        ("http://h/patients/?page=2&Access-Token=abc", None, "a query parameter named 'Access-Token'"),
        ("http://h/p/?X-Amz-Signature=abc&X-Amz-Credential=k", None, "a query parameter named 'X-Amz-Signature'"),
        ("http://h/p/?%61pi_key=abc", None, "a query parameter named 'api_key'"),  # the name URL-encoded
        ("http://h/p/?next=http%3A%2F%2Fh%2F%3Fsig%3Dabc", None, "a query parameter named 'sig'"),  # nested link
        ("http://h/p/?token=t2", "token", None),  # the stream's own continuation parameter
        ("http://user:pw@h/p/?page=2", None, "user info"),
        ("http://h/p/?cursor=sk-live-0123", None, "the source's token"),
        ("http://h/p/?cursor=sk%2Dlive%2D0123", None, "the source's token"),
        ("http://h/p/?cursor=sk%252Dlive%252D0123", None, "the source's token"),  # encoded twice
        ("c2stbGl2ZS0wMTIz", None, None),  # base64 of it is not the token: cannot be told
    ],
)
def test_credential_in(position: str, own_param: str | None, reason: str | None):
    assert credential_in(position, ["sk-live-0123"], own_param) == reason


def keyed_stream(**changes: Any) -> Stream:
    declared: dict[str, Any] = {
        "name": "s",
        "path": "/x",
        "params": {"limit": 2, "offset": 0},
        "paginator": OffsetPaginator(),
        "parse": parse_list_or_drf,
        "key": "id",
        "size_param": "limit",
    }
    return Stream(**{**declared, **changes})


def serve(*bodies: Any) -> SourceClient:
    answers = iter(bodies)
    return SourceClient(
        "src", "http://test", {}, transport=httpx.MockTransport(lambda r: httpx.Response(200, json=next(answers)))
    )


@pytest.mark.parametrize(
    ("bodies", "error"),
    [
        # the same keys for the next offset
        ([[{"id": 1}, {"id": 2}], [{"id": 1}, {"id": 2}]], "pagination loop"),
        # keyless records compare by content: the same two again is a loop; a next page starting at the last
        # one seen is not
        ([[{"x": 1}, {"x": 2}], [{"x": 1}, {"x": 2}]], "pagination loop"),
        ([[{"x": 1}, {"x": 2}], [{"x": 2}, {"x": 3}], [{"x": 3}]], None),
        ([[{"id": 1}, {"id": 2}], [{"id": 3}, {"id": 4}, {"id": 5}]], "a page holds 3 records, more than the 2 asked"),
    ],
)
def test_reader_refuses_a_repeated_or_oversized_page(bodies: list[Any], error: str | None):
    pages = read_pages(serve(*bodies), keyed_stream(), {"limit": 2, "offset": 0})
    if error is None:
        assert len(list(pages)) == len(bodies)
        return
    next(pages)
    with pytest.raises(BodyError, match=error):
        next(pages)


def test_a_listing_of_ids_loops_on_the_ids():
    stream = keyed_stream(paginator=TokenPaginator(), params={}, size_param=None, details="/x/{id}", parse=_ids)
    pages = read_pages(serve({"ids": ["a", "b"], "t": "1"}, {"ids": ["a", "b"], "t": "2"}), stream, {})
    next(pages)
    with pytest.raises(BodyError, match="repeats the previous page's 2 records"):
        next(pages)


def _ids(body: Any) -> Page:
    return Page(body["ids"], next_token=body["t"])


def _requests(*bodies: Any) -> tuple[SourceClient, list[dict[str, str]]]:
    sent: list[dict[str, str]] = []
    answers = iter(bodies)

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(dict(request.url.params))
        return httpx.Response(200, json=next(answers))

    return SourceClient("src", "http://test", {}, transport=httpx.MockTransport(answer)), sent


@pytest.mark.parametrize(
    ("second", "shifted"),
    [
        ([{"id": 2}, {"id": 3}], False),  # starts at the last record seen: one new record
        ([{"id": 3}, {"id": 4}], True),  # record 2 moved away: something before it was deleted
        ([{"id": 0}, {"id": 2}], True),  # something was inserted before it
        ([], True),  # even the anchor is gone
    ],
)
def test_each_offset_page_starts_at_the_last_record_seen(second: list[Any], shifted: bool):
    client, sent = _requests([{"id": 1}, {"id": 2}], second, [])
    pages = read_pages(client, keyed_stream(), {"limit": 2, "offset": 0})
    first_params, first = next(pages)
    assert (first.anchor, first.overlap, first.new_records) == ("2", 0, [{"id": 1}, {"id": 2}])
    if shifted:
        with pytest.raises(ListingShifted):
            next(pages)
    else:
        params, page = next(pages)
        assert (page.overlap, page.new_records) == (1, second[1:])
    assert sent[1] == {"limit": "2", "offset": "1"}  # the anchor itself is never sent


def test_a_resumed_offset_walk_checks_its_stored_anchor():
    client, sent = _requests([{"id": 7}, {"id": 8}], [])
    start = OffsetPaginator().resume({"limit": 2, "offset": 0}, {"offset": 10, "anchor": "7"})
    _, page = next(read_pages(client, keyed_stream(), start))
    assert sent[0] == {"limit": "2", "offset": "9"} and page.new_records == [{"id": 8}]
    client, _ = _requests([{"id": 6}, {"id": 7}])
    with pytest.raises(ListingShifted):
        next(read_pages(client, keyed_stream(), start))


def test_a_cycle_of_pages_is_a_loop():
    stream = keyed_stream(paginator=TokenPaginator(), params={}, size_param=None, details="/x/{id}", parse=_ids)
    answers = [{"ids": ["a", "b"], "t": "1"}, {"ids": ["c", "d"], "t": "2"}, {"ids": ["a", "b"], "t": "3"}]
    pages = read_pages(serve(*answers), stream, {})
    next(pages), next(pages)
    with pytest.raises(BodyError, match="holds only records already read"):
        next(pages)
