"""Prescrypto: patients (a bare list or a DRF envelope) and medics (an envelope, at most 100 a page).

Auth is ``Authorization: Token <token>``; both lists page with ``limit``/``offset``.
"""

from __future__ import annotations

from connectors.bodies import parse_list_or_drf
from connectors.paging import OffsetPaginator
from connectors.stream import Stream

AUTH_HEADER, AUTH_SCHEME = "Authorization", "Token"


PATIENTS = Stream(
    name="patients",
    path="/api/v2/patient/",
    params={"limit": 100, "offset": 0},
    paginator=OffsetPaginator(),
    parse=parse_list_or_drf,
    key="uid",
    size_param="limit",
)

MEDICS = Stream(
    name="medics",
    path="/api/v2/medics/",
    params={"limit": 100, "offset": 0},
    paginator=OffsetPaginator(),
    parse=parse_list_or_drf,
    key="id",
    integer_key=True,
    size_param="limit",
    max_page_size=100,
)

STREAMS = {stream.name: stream for stream in (PATIENTS, MEDICS)}
