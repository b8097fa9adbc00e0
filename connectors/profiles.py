"""The profiles API (a Django REST service): one listing of patients keyed by ``unique_id``.

The document shows a bare list and no paging; should a DRF envelope appear, its ``next`` links are followed.
Auth is ``Authorization: Token <token>`` by default; the document does not say, so config can change it.
"""

from __future__ import annotations

from connectors.bodies import parse_list_or_drf
from connectors.paging import NextUrlPaginator
from connectors.stream import Stream

AUTH_HEADER, AUTH_SCHEME = "Authorization", "Token"

PATIENTS = Stream(
    name="patients",
    path="/patients/patients/",
    params={},
    paginator=NextUrlPaginator(),
    parse=parse_list_or_drf,
    key="unique_id",
)
