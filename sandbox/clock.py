"""Time in the sandbox: generated data is dated on or before a fixed day, never relative to today.

A dataset that moved with the calendar would change between two syncs a day apart (an age, a date window) and
make "a re-sync writes nothing" untestable; writes through the vendor endpoints are stamped with the real
clock, as a real server would.
"""

from __future__ import annotations

import datetime as dt
import functools

AS_OF = dt.date(2026, 6, 30)  # the last day of generated data; ages are computed on it
UTC = dt.UTC


@functools.cache
def days(first: dt.date, last: dt.date = AS_OF) -> tuple[str, ...]:
    """Every day from `first` to `last` inclusive, as YYYY-MM-DD."""
    return tuple(dt.date.fromordinal(o).isoformat() for o in range(first.toordinal(), last.toordinal() + 1))


@functools.cache
def times_of_day() -> tuple[str, ...]:
    """Each second of a day as HH:MM:SS, indexed by seconds past midnight: formatting is the costly part of
    stamping 100,000 records."""
    return tuple(f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60))


def stamp(day: str, seconds: int, millis: bool) -> str:
    """`day` at `seconds` past midnight UTC: "2023-01-01T12:00:00Z", or "...00.000Z" with `millis`."""
    return f"{day}T{times_of_day()[seconds]}{'.000Z' if millis else 'Z'}"


def parse_utc(value: object) -> dt.datetime | None:
    """An ISO 8601 timestamp as an aware UTC datetime (naive ones taken as UTC); None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset that moves it out of the years 1-9999
        return None


def bumped(previous: object, millis: bool) -> str:
    """Now, in `stamp`'s format, but strictly after `previous` when that is a later timestamp: an update must
    move an updated-at field forward even when the generated value lies ahead of the real clock."""
    now = dt.datetime.now(UTC).replace(microsecond=0)
    before = parse_utc(previous)
    if before is not None and now <= before:
        now = before.replace(microsecond=0) + dt.timedelta(seconds=1)
    return stamp(now.date().isoformat(), now.hour * 3600 + now.minute * 60 + now.second, millis)


def age_on(birth_date: str, on: dt.date = AS_OF) -> int | None:
    """Whole years from `birth_date` (YYYY-MM-DD) to `on`; None when it is not a date."""
    try:
        born = dt.date.fromisoformat(birth_date)
    except (TypeError, ValueError):
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
