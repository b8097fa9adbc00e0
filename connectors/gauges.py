"""The gauges API: patients by ``page``/``page_size``, and each patient's readings since a date.

Auth is ``X-User-Token: <token>``. The patient list ends at an empty or short page; its body is a bare list
or an object holding the list under ``patients``, ``data`` or ``results`` (the document leaves it open).
Readings are asked for with ``start_date`` (YYYY-MM-DD, inclusive), so a sync fetches only what is new.
"""

from __future__ import annotations

from connectors.bodies import parse_list_or_keyed
from connectors.paging import OnePage, PageNumberPaginator
from connectors.stream import Parent, Stream

AUTH_HEADER, AUTH_SCHEME = "X-User-Token", ""

# The document gives no cap; a server that silently capped a larger page_size would end the walk after the
# first "short" page, so the page size stays within what such APIs commonly allow.
MAX_PAGE_SIZE = 100

PATIENTS = Stream(
    name="patients",
    path="/v1/patients",
    params={"page": 1, "page_size": 100},
    paginator=PageNumberPaginator(),
    parse=parse_list_or_keyed("patients", "data", "results"),
    key="id",
    integer_key=True,
    size_param="page_size",
    max_page_size=MAX_PAGE_SIZE,
)

GAUGES = Stream(
    name="gauges",
    path="/v1/patients/{id}/gauges",
    params={},
    paginator=OnePage(),
    parse=parse_list_or_keyed("gauges", "data", "results"),
    key="id",
    integer_key=True,
    parent=Parent("patients", since_param="start_date", token_check=("/v1/patients", {"page": 1, "page_size": 1})),
)
