"""``console``: the steward's console in a browser (pipeline.app.web)."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.app.commands.identity import Operator
from pipeline.app.console import err, fail, load_config, open_database


def console(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(metavar="PORT", min=0, max=65535, help="Port to listen on.")] = 8500,
    host: Annotated[
        str,
        typer.Option(
            metavar="HOST", help="Address to listen on; anything but loopback needs console.token in the config."
        ),
    ] = "127.0.0.1",
    operator: Operator = None,
) -> None:
    """Serve the review queue, side-by-side compare, persons and the streams' health to a browser.

    Open http://HOST:PORT/ . Decisions made there are the same as `review accept|reject|undo`, recorded in
    identity_history with the operator's name. Stop with Ctrl-C."""
    from canonical.errors import ConfigError, ServeError
    from pipeline.app.web.guard import check_bind
    from pipeline.app.web.serve import serve

    config = load_config(ctx)
    try:
        check_bind(host, config.console.token.get_secret_value() if config.console.token else None)
    except ConfigError as exc:
        fail(str(exc), 2)
    engine = open_database(config)
    shown = f"[{host}]" if ":" in host else host
    err.print(f"console on http://{shown}:{port}/ (Ctrl-C stops it)", highlight=False)
    try:
        serve(config, engine, host, port, operator)
    except ServeError as exc:
        fail(str(exc), 2)
