"""Small pieces that the simulated APIs share: JSON responses, bodies, paths with either slash, record staging.

Each vendor words its errors its own way, so nothing here answers a vendor error: callers pass the response
they want for a body that is not JSON or a record that does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox.store import Table

Endpoint = Callable[[Request], Awaitable[Response]]


def json_bytes(body: bytes, status: int = 200) -> Response:
    """Already-encoded JSON (see sandbox.store.encode) as a response."""
    return Response(body, status_code=status, media_type="application/json")


async def read_json(request: Request) -> Any:
    """The JSON body, None when empty; ValueError when it is not JSON."""
    raw = await request.body()
    return json.loads(raw) if raw else None


def int_param(request: Request, name: str, minimum: int) -> int | None:
    """An integer query parameter; None when absent, not a number or below `minimum`."""
    try:
        value = int(request.query_params[name])
    except (KeyError, ValueError):
        return None
    return value if value >= minimum else None


def both_slashes(path: str, endpoint: Endpoint, methods: list[str]) -> list[BaseRoute]:
    # Clients write paths with and without the trailing slash, and a redirect would cost a round trip and
    # drop the Authorization header on some clients.
    return [Route(path, endpoint, methods=methods), Route(path + "/", endpoint, methods=methods)]


def is_page_size(value: Any) -> bool:
    """A switch's page size: an int of at least 1 (JSON ``true`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def control_error(message: str, status: int = 400) -> Response:
    """An error of a control route: these are not part of any vendor API, so they all look alike."""
    return JSONResponse({"message": message}, status_code=status)


async def control_object(request: Request) -> dict[str, Any] | Response:
    """A control route's body, which must be a JSON object (empty: {}); otherwise the 400 to answer."""
    try:
        body = await read_json(request)
    except ValueError as exc:
        return control_error(f"invalid JSON: {exc}")
    if body is None:
        return {}
    if not isinstance(body, dict):
        return control_error("expected a JSON object")
    return body


def staging_routes(prefix: str, table: Callable[[], Table], key: str, new_key: Callable[[], Any]) -> list[BaseRoute]:
    """POST `prefix` appends a raw record as it is (`key` from `new_key()` when absent: an explicit null or
    "" stays), or each record of a JSON list in order (answering with the list); PATCH `prefix/{key}` merges
    fields into it; DELETE `prefix/{key}` removes it.

    No validation at all: staging is how a test serves records that the vendor's own endpoints would refuse.
    `table` is called on each request because a reset replaces the table.
    """

    def append(record: dict[str, Any]) -> Any:
        if key not in record:
            record[key] = new_key()
        return table().append(record)

    async def add(request: Request) -> Response:
        try:
            body = await read_json(request)
        except ValueError as exc:
            return control_error(f"invalid JSON: {exc}")
        if isinstance(body, list):
            if not all(isinstance(record, dict) for record in body):
                return control_error("expected a JSON object or a list of objects")
            return JSONResponse([append(record) for record in body], status_code=201)
        body = await control_object(request)
        if isinstance(body, Response):
            return body
        return JSONResponse(append(body), status_code=201)

    async def change(request: Request) -> Response:
        pos = table().find(key, request.path_params["key"])
        if pos is None:
            return control_error("Not found", 404)
        if request.method == "DELETE":
            return JSONResponse(table().remove(pos))
        body = await control_object(request)
        if isinstance(body, Response):
            return body
        return JSONResponse(table().update(pos, body))

    return [
        Route(prefix, add, methods=["POST"]),
        Route(prefix + "/{key}", change, methods=["PATCH", "DELETE"]),
    ]


def token_guard(
    header: str, scheme: str, token: Callable[[], str], refusal: dict[str, Any]
) -> Callable[[Endpoint], Endpoint]:
    """Wrap endpoints so that they answer 401 with ``refusal`` unless ``header`` carries ``scheme`` and the
    current token (``scheme`` "" means the bare token). ``token`` is called per request: a switch changes it."""

    def guard(endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            given = request.headers.get(header, "").strip()
            if scheme:
                said, _, given = given.partition(" ")
                if said.lower() != scheme.lower():
                    return JSONResponse(refusal, status_code=401)
            if given.strip() != token():
                return JSONResponse(refusal, status_code=401)
            return await endpoint(request)

        return guarded

    return guard


async def drf_object(request: Request) -> dict[str, Any] | Response:
    """A request body as Django REST framework reads one: a JSON object, else its 400."""
    try:
        body = await read_json(request)
    except ValueError as exc:
        return JSONResponse({"detail": f"JSON parse error - {exc}"}, status_code=400)
    if not isinstance(body, dict):
        kind = "null" if body is None else type(body).__name__
        return JSONResponse(
            {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]}, status_code=400
        )
    return body


@dataclass(frozen=True)
class Switch:
    """One switch of a simulated API: the state attribute it sets, and what a value must be."""

    name: str
    valid: Callable[[Any], bool]
    problem: str  # said when a value is not valid
    stored: Callable[[Any], Any] = lambda value: value  # the value as the state keeps it
    shown: Callable[[Any], Any] = lambda value: value  # the kept value as the route answers it


TOKEN = Switch("token", lambda value: True, "", stored=str)


def switches_route(state: Any, switches: Sequence[Switch]) -> Route:
    """``GET/POST /switches``: every switch of ``state``; a POST sets those it names, all or none."""

    async def handler(request: Request) -> Response:
        if request.method == "POST":
            body = await control_object(request)
            if isinstance(body, Response):
                return body
            for switch in switches:
                if switch.name in body and not switch.valid(body[switch.name]):
                    return control_error(f"{switch.name!r} {switch.problem}")
            for switch in switches:
                if switch.name in body:
                    setattr(state, switch.name, switch.stored(body[switch.name]))
        return JSONResponse({switch.name: switch.shown(getattr(state, switch.name)) for switch in switches})

    return Route("/switches", handler, methods=["GET", "POST"])
