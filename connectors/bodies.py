"""Parsers that turn any documented response body into a ``Page``.

A parser raises ``ValueError`` with what it expected; the reader turns that into a ``BodyError`` naming the
source and stream.
"""

from __future__ import annotations

from typing import Any

from connectors.paging import Page


def _records(items: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise ValueError(f"expected a list of records in {where}, got {type(items).__name__}")
    return items


def parse_list_or_drf(body: Any) -> Page:
    """A bare list, or a DRF envelope.

    >>> parse_list_or_drf([{"id": 1}]).records
    [{'id': 1}]
    >>> parse_list_or_drf({"count": 2, "next": "http://h/?offset=1", "previous": None, "results": [{"id": 1}]})
    Page(records=[{'id': 1}], has_more=True, next_token='http://h/?offset=1', total=2, extra={}, anchor=None, overlap=0)
    """
    if isinstance(body, list):
        return Page(records=body)
    if isinstance(body, dict) and "results" in body:
        next_url = body.get("next")
        if next_url is not None and not isinstance(next_url, str):
            raise ValueError(f"'next' should be a link or null, got {_shape(next_url)}")
        count = body.get("count")
        return Page(
            records=_records(body["results"], "'results'"),
            has_more=bool(next_url),
            next_token=next_url or None,
            total=count if isinstance(count, int) else None,
        )
    raise ValueError(f"expected a list or a {{count, next, previous, results}} envelope, got {_shape(body)}")


def parse_list_or_keyed(*keys: str):  # type: ignore[no-untyped-def]
    """A bare list, or an object holding the list under the first of ``keys`` present."""

    def parse(body: Any) -> Page:
        if isinstance(body, list):
            return Page(records=body)
        if isinstance(body, dict):
            for key in keys:
                if key in body:
                    return Page(records=_records(body[key], repr(key)))
        raise ValueError(f"expected a list or an object with one of {list(keys)}, got {_shape(body)}")

    return parse


def _shape(body: Any) -> str:
    """A body's shape, never its text: its keys could be anything the source chose to send."""
    if isinstance(body, dict):
        return f"an object with {len(body)} key{'' if len(body) == 1 else 's'}"
    return {str: "text", int: "a number", float: "a number", bool: "a boolean", type(None): "null"}.get(
        type(body), type(body).__name__
    )
