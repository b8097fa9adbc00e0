"""Cursor arithmetic: a checkpoint replaces the old position; sweeps keep their own; the tail survives both."""

from __future__ import annotations

import pytest

from pipeline.storage.run_values import Mode
from pipeline.sync.cursor import Cursor


@pytest.mark.parametrize(
    ("cursor", "checkpoint", "sweeping", "expected"),
    [
        ({}, {"offset": 100}, False, {"offset": 100}),
        ({"offset": 100}, {"offset": 137}, False, {"offset": 137}),
        # a token listing that ended forgets its token: the next run lists from the start
        ({"continuation_token": "t2"}, {}, False, {}),
        # an incremental run leaves a pending sweep alone
        (
            {"offset": 5, "sweep": {"offset": 50, "resumed": False}},
            {"offset": 6},
            False,
            {"sweep": {"offset": 50, "resumed": False}, "offset": 6},
        ),
        # a sweep's page moves the sweep position only
        (
            {"offset": 5, "sweep": {"offset": 50, "started_at": "t", "resumed": True}},
            {"offset": 60},
            True,
            {"offset": 5, "sweep": {"started_at": "t", "resumed": True, "offset": 60}},
        ),
        (
            {"sweep": {"continuation_token": "a", "started_at": "t", "resumed": False}},
            {},
            True,
            {"sweep": {"started_at": "t", "resumed": False}},
        ),
    ],
)
def test_advance(cursor, checkpoint, sweeping, expected):
    mode = Mode.sweep if sweeping else Mode.incremental
    assert Cursor.from_json(cursor).advanced(checkpoint, mode).to_json() == expected


@pytest.mark.parametrize(
    ("cursor", "expected"),
    [
        ({"offset": 5, "sweep": {"offset": 230, "started_at": "t", "resumed": False}}, {"offset": 230}),
        ({"continuation_token": "old", "sweep": {"started_at": "t", "resumed": True}}, {}),
        ({"page": 2, "sweep": {"page": 4, "started_at": "t", "resumed": False}}, {"page": 4}),
        # a fan-out sweep ends with an empty position: the next pass starts from the first parent
        ({"after": "17", "sweep": {"started_at": "t", "resumed": False}}, {}),
    ],
)
def test_end_sweep(cursor, expected):
    assert Cursor.from_json(cursor).swept().to_json() == expected


def test_a_stored_cursor_reads_back_as_it_was_written():
    stored = {"offset": 937, "anchor": "u9", "sweep": {"offset": 400, "started_at": "t", "resumed": False}}
    assert Cursor.from_json(stored).to_json() == stored
