"""The sweep's set of seen keys answers like a set for what was added, across updates, clears and lookups."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.sync.keyset import KeySet

keys = st.text(min_size=1, max_size=40)


@given(st.lists(st.lists(keys, max_size=30), max_size=8), st.lists(keys, max_size=30))
def test_every_added_key_is_found_and_others_are_not(pages: list[list[str]], others: list[str]) -> None:
    seen, expected = KeySet(), set()
    for page in pages:
        seen.update(page)
        expected.update(page)
        probe = page[:1]  # a lookup between updates must not lose what comes after it
        assert all(k in seen for k in probe)
    assert all(k in seen for k in expected)
    assert not any(k in seen for k in set(others) - expected)
    assert bool(seen) == bool(expected)


def test_clear_forgets_everything() -> None:
    seen = KeySet()
    seen.update(["a", "b"])
    assert "a" in seen
    seen.clear()
    seen.update(["c"])
    assert "a" not in seen and "b" not in seen and "c" in seen
