"""The steward's console: a Starlette app of server-rendered pages (Jinja2, autoescaped), no script.

GET pages change nothing. Every decision is a POST with the CSRF token and goes through the functions behind
``review accept|reject|undo`` (``pipeline.app.identity``), so the CLI and the console write the same rows and
each sees the other's decisions on its next read. The database work runs in Starlette's threadpool, off the
event loop. The access log names the page, never its path or query: a path can hold a patient's identifier.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import structlog
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from canonical.errors import NotFound
from pipeline.app import identity as decisions
from pipeline.app.web import pages
from pipeline.app.web.guard import COOKIE, HEADERS, Guard, Session, same_origin
from pipeline.config import Config
from pipeline.sync.linking import current_model
from pipeline.sync.messages import frames

log = structlog.get_logger(__name__)
HERE = Path(__file__).resolve().parent
_SIGN_IN_FREE = ("/login", "/static/")
_ANONYMOUS_BODY = 4096  # bytes a POST may carry before signing in (the login form)
_BULK_KEYS = ("action", "low", "high")  # what a bulk preview passes on, beside the comparisons' levels


def create_app(config: Config, engine: Engine, guard: Guard) -> Starlette:
    """The console over this database; ``guard`` decides who may use it."""
    templates = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True), auto_reload=False
    )
    templates.filters["query"] = lambda values: urlencode(values)

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        session: Session = request.state.session
        html = templates.get_template(name).render(
            csrf=guard.csrf(request.state.sid), operator=session.operator, signed_in=session.signed_in, **context
        )
        return HTMLResponse(html, status_code=status)

    async def checked_form(request: Request) -> Any:
        """The POSTed form, once its CSRF token holds (403 otherwise); a form larger than any of the console's
        is refused (400)."""
        small = request.url.path == "/login"
        try:
            form = await request.form(max_files=0, max_fields=4 if small else 32, max_part_size=512 if small else 65536)
        except HTTPException as exc:
            raise _Refused(400, "the form is larger than any of this console's") from exc
        token = form.get("csrf")
        if not guard.csrf_holds(request.state.sid, token if isinstance(token, str) else None):
            raise _Refused(403, "the form's CSRF token is missing or stale: load the page again")
        return form

    async def off_loop(work: Callable[..., Any], *args: Any) -> Any:
        """Database work in Starlette's threadpool: a bulk decision's link pass keeps no other page waiting."""
        return await run_in_threadpool(work, *args)

    def operator(request: Request) -> str | None:
        session: Session = request.state.session
        return session.operator

    async def queue(request: Request) -> Response:
        try:
            wanted = pages.Filter.parse(request.query_params)
        except ValueError as exc:
            return render(request, "error.html", 400, message=str(exc))
        return render(request, "queue.html", view=await off_loop(pages.queue, engine, wanted), levels=pages.levels())

    async def compare(request: Request) -> Response:
        link_id = _link_id(request)
        view = await off_loop(lambda: pages.compare(engine, link_id, current_model(engine)))
        return render(request, "compare.html", view=view)

    async def decide(request: Request) -> Response:
        await checked_form(request)
        link_id, action = _link_id(request), request.path_params["action"]
        if action == "undo":
            done = await off_loop(decisions.undo, engine, config.identity, link_id, operator(request))
            return RedirectResponse(f"/person/{done.patient_id}", 303)
        if action not in ("accept", "reject"):
            raise NotFound(f"no action {action}")
        accept, who = action == "accept", operator(request)
        done = await off_loop(decisions.decide_manually, engine, config.identity, link_id, accept, who)
        if action == "accept":
            return RedirectResponse(f"/person/{done.patient_id}", 303)  # the person the patient is in now
        return RedirectResponse("/review", 303)

    def selection(params: Any) -> tuple[decisions.Selection, bool]:
        wanted = pages.Filter.parse(params)
        pattern = {name: params.get(name) for name in pages.levels() if params.get(name)}
        declared = ",".join(f"{name}={level}" for name, level in pattern.items())
        chosen = decisions.Selection(wanted.low, wanted.high, decisions.parse_pattern(declared))
        action = params.get("action")
        if action not in ("accept", "reject"):
            raise ValueError("action: accept or reject")
        return chosen, action == "accept"

    async def bulk_preview(request: Request) -> Response:
        try:
            chosen, accept = selection(request.query_params)
        except ValueError as exc:
            return render(request, "error.html", 400, message=str(exc))
        preview = await off_loop(decisions.decide_bulk, engine, config.identity, chosen, accept, True)
        wanted = (*_BULK_KEYS, *pages.levels())
        params = {k: v for k, v in request.query_params.items() if k in wanted and v}
        # The decision takes what the preview showed (and is still open), never what a sync added since.
        params["links"] = ",".join(str(link["id"]) for link in preview.links)
        return render(request, "bulk.html", preview=preview, accept=accept, params=params, done=False)

    async def bulk(request: Request) -> Response:
        form = await checked_form(request)
        try:
            chosen, accept = selection(form)
        except ValueError as exc:
            return render(request, "error.html", 400, message=str(exc))
        shown = {int(i) for i in str(form.get("links") or "").split(",") if i.isascii() and i.isdigit() and len(i) < 19}
        who = operator(request)
        made = await off_loop(decisions.decide_bulk, engine, config.identity, chosen, accept, False, who, shown)
        return render(request, "bulk.html", preview=made, accept=accept, params={}, done=True)

    async def bulk_undo(request: Request) -> Response:
        form = await checked_form(request)
        batch = str(form.get("batch") or "")
        undone = await off_loop(decisions.undo_batch, engine, config.identity, batch, operator(request))
        return render(request, "undone.html", batch=batch, undone=undone)

    async def person(request: Request) -> Response:
        view = await off_loop(pages.person, engine, config, request.path_params["ref"])
        return render(request, "person.html", view=view)

    async def find(request: Request) -> Response:
        ref = (request.query_params.get("ref") or "").strip()
        if not ref:
            return RedirectResponse("/review", 303)
        return RedirectResponse(f"/person/{await off_loop(decisions.find_person, engine, ref)}", 303)

    async def streams(request: Request) -> Response:
        return render(request, "streams.html", view=await off_loop(pages.streams, config, engine), retried=None)

    async def retry(request: Request) -> Response:
        from pipeline.sync.retry import retry_quarantine

        await checked_form(request)
        results, _ = await off_loop(retry_quarantine, config, engine)
        return render(request, "streams.html", view=await off_loop(pages.streams, config, engine), retried=results)

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return render(request, "login.html", failed=False)
        form = await checked_form(request)
        name = str(form.get("operator") or "").strip()
        if not name or len(name) > 64 or not name.isprintable():
            return render(request, "login.html", 400, failed=True, message="your name: 1 to 64 characters")
        sid = guard.sign_in(request.state.sid, str(form.get("token") or ""), name, time.monotonic())
        if sid is None:
            return render(request, "login.html", 401, failed=True, message="wrong token: ask whoever runs the console")
        response = RedirectResponse("/review", 303)
        _set_cookie(response, sid)
        return response

    async def logout(request: Request) -> Response:
        await checked_form(request)
        guard.sign_out(request.state.sid)
        return RedirectResponse("/login" if guard.token else "/review", 303)

    async def home(request: Request) -> Response:
        return RedirectResponse("/review", 303)

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/", home),
        Route("/favicon.ico", no_icon),
        Route("/review", queue),
        Route("/review/bulk", bulk_preview, methods=["GET"]),
        Route("/review/bulk", bulk, methods=["POST"]),
        Route("/review/bulk/undo", bulk_undo, methods=["POST"]),
        Route("/review/{link_id:int}", compare),
        Route("/links/{link_id:int}/{action}", decide, methods=["POST"]),
        Route("/person", find),
        Route("/person/{ref}", person),
        Route("/streams", streams),
        Route("/quarantine/retry", retry, methods=["POST"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    async def refused(request: Request, exc: Exception) -> Response:
        status = exc.status if isinstance(exc, _Refused) else 404
        return render(request, "error.html", status, message=str(exc))

    class Console(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            started = time.perf_counter()
            sid, session, new = guard.session(request.cookies.get(COOKIE), time.monotonic())
            if guard.bearer(request.headers.get("authorization")) and not session.signed_in:
                session = Session(guard.operator, True)  # this request only: a bearer token opens no session
            request.state.sid, request.state.session = sid, session
            allowed = session.signed_in or request.url.path.startswith(_SIGN_IN_FREE)
            host, posted = request.headers.get("host"), request.method == "POST"
            response: Response
            try:
                if not guard.host_allowed(host):
                    response = PlainTextResponse("this console answers to a loopback address only", 400)
                elif posted and not same_origin(
                    request.headers.get("origin"), request.headers.get("sec-fetch-site"), host
                ):
                    response = PlainTextResponse("a form of another site", 403)
                elif posted and not session.signed_in and _longer(request, _ANONYMOUS_BODY):
                    response = PlainTextResponse("sign in first", 413)
                elif allowed:
                    response = await call_next(request)
                elif request.method == "GET":
                    response = RedirectResponse("/login", 303)
                else:
                    response = PlainTextResponse("sign in first", 401)
            except Exception as exc:  # noqa: BLE001 - its text may hold a patient's data: the type and frames only
                log.error("console error", error=type(exc).__name__, frames=frames(exc))
                response = PlainTextResponse("the console failed on this request; its log says where", 500)
            if new:
                _set_cookie(response, sid)
            response.headers.update(HEADERS)
            endpoint = request.scope.get("endpoint")
            log.info(
                "console request",
                method=request.method,
                page=getattr(endpoint, "__name__", "static" if request.url.path.startswith("/static/") else "none"),
                status=response.status_code,
                ms=round(1000 * (time.perf_counter() - started), 1),
            )
            return response

    handlers = {_Refused: refused, NotFound: refused}
    app = Starlette(routes=routes, middleware=[Middleware(Console)], exception_handlers=handlers)
    app.router.redirect_slashes = False  # its redirect is built from the Host header
    return app


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _link_id(request: Request) -> int:
    link_id = int(request.path_params["link_id"])
    if link_id >= 2**62:  # past any database's integer: no such link
        raise NotFound(f"no link {link_id}")
    return link_id


def _longer(request: Request, limit: int) -> bool:
    length = request.headers.get("content-length")
    return length is None or not length.isdigit() or int(length) > limit


def _set_cookie(response: Response, sid: str) -> None:
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/")
