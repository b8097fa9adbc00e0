"""Particle Health: a listing of ``patient_id``s with a continuation token, then one GET per patient.

Auth is the bare token in ``Authorization``. A listing page holds up to 200 ids and a ``continuation_token``
that is null, empty or absent on the last page; the document does not name the query parameter that carries
it back, so it is ``continuation_token`` unless config says otherwise.
"""

from __future__ import annotations

from typing import Any

from connectors.paging import Page, TokenPaginator
from connectors.stream import Stream

AUTH_HEADER, AUTH_SCHEME = "Authorization", ""


def parse_listing(body: Any) -> Page:
    """``{continuation_token, patients: [ids]}``; the ids are the page's records.

    >>> parse_listing({"continuation_token": "t", "patients": ["a", "b"]})
    Page(records=['a', 'b'], has_more=True, next_token='t', total=None, extra={}, anchor=None, overlap=0)
    >>> parse_listing({"patients": ["c"]}).has_more
    False
    """
    if not isinstance(body, dict) or not isinstance(body.get("patients"), list):
        raise ValueError("expected an object with a 'patients' list of ids")
    token = body.get("continuation_token")
    if token is not None and not isinstance(token, str):
        raise ValueError(f"'continuation_token' should be text, got {type(token).__name__}")
    return Page(records=body["patients"], has_more=bool(token), next_token=token or None)


PATIENTS = Stream(
    name="patients",
    path="/api/v1/patients",
    params={},
    paginator=TokenPaginator("continuation_token"),
    parse=parse_listing,
    key="patient_id",
    details="/api/v1/patients/{id}",
)
