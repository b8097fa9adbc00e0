"""Serving the console with uvicorn: in the foreground (``patientsync console``) or beside the daemon's jobs in a
thread of its own (``daemon --console-port``)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from sqlalchemy import Engine

from canonical.errors import ServeError
from pipeline.app.identity import local_operator
from pipeline.app.web.app import create_app
from pipeline.app.web.guard import Guard, check_bind
from pipeline.config import Config


def _server(
    config: Config, engine: Engine, host: str, port: int, operator: str | None
) -> tuple[uvicorn.Server, socket.socket]:
    """The server and its listening socket, bound here so that a port in use is an error of ours, not an exit."""
    token = config.console.token.get_secret_value() if config.console.token else None
    check_bind(host, token)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listening = socket.socket(family, kind, proto)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
    except OSError as exc:
        raise ServeError(f"console: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    app = create_app(config, engine, Guard(token, local_operator(operator)))
    # uvicorn's own access log prints the path and query, which may name a patient: the app logs each request.
    settings = uvicorn.Config(app, access_log=False, log_config=None, lifespan="off")
    return uvicorn.Server(settings), listening


def serve(config: Config, engine: Engine, host: str, port: int, operator: str | None = None) -> None:
    """Serve until interrupted (``ConfigError`` for a bind the token does not allow, ``ServeError`` for a port
    that cannot be had)."""
    server, listening = _server(config, engine, host, port, operator)
    server.run(sockets=[listening])
    if server.should_exit:
        # Stopped by a signal. uvicorn raises it again once it has shut down, for Ctrl-C to end the command as
        # Ctrl-C does (status 130); should that raise not reach here (once seen under load, exit status 0), a
        # stop is still an interrupt, never a clean exit.
        raise KeyboardInterrupt


class ConsoleServer:
    """The console in a daemon thread, for as long as the ``with`` block."""

    def __init__(self, config: Config, engine: Engine, host: str, port: int, operator: str | None = None) -> None:
        self.server, listening = _server(config, engine, host, port, operator)
        self.where = f"{host}:{port}"
        self.port = listening.getsockname()[1]  # the one the system chose, for port 0
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [listening]}, name="console", daemon=True
        )

    def __enter__(self) -> ConsoleServer:
        self._thread.start()
        while not self.server.started and self._thread.is_alive():
            time.sleep(0.05)
        if not self.server.started:
            raise ServeError(f"console: could not listen on {self.where}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
