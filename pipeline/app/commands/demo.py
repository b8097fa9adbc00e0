"""``sandbox`` and ``demo``: the simulated vendor APIs, served alone or swept into a demo database."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from pipeline.app.commands.running import print_results, progress_bars
from pipeline.app.console import err, fail, load_config, open_database, out, shown_url


def sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8400,
    patients: Annotated[int, typer.Option(help="Synthetic patients per API.")] = 250,
    medics: Annotated[int, typer.Option(help="Synthetic clinicians: Prescrypto medics and profiles doctors.")] = 40,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 1,
) -> None:
    """Serve the simulated source APIs on localhost: /prescrypto, /profiles, /gauges, /particle (Ctrl-C stops)."""
    from sandbox.server import serve

    err.print(f"sandbox on http://127.0.0.1:{port}: /prescrypto, /profiles, /gauges and /particle")
    serve("127.0.0.1", port, patients=patients, medics=medics, seed=seed)


def demo(
    ctx: typer.Context,
    patients: Annotated[int, typer.Option(help="Synthetic patients per API.")] = 250,
    noise: Annotated[
        bool,
        typer.Option(
            help="Each API's copy of a person carries the errors real registries make (typos, nicknames, a moved "
            "address, a digit off in a birth date), beside twins, household members and namesakes."
        ),
    ] = True,
    database: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Database to fill (default: sqlite:///patientsync-demo.db, never the configured one).",
            show_default=False,
        ),
    ] = None,
    console: Annotated[
        bool,
        typer.Option(
            "--console", help="Then serve the steward's console over the demo database on 127.0.0.1 (see `console`)."
        ),
    ] = False,
    console_port: Annotated[int, typer.Option(metavar="PORT", min=0, max=65535, help="The console's port.")] = 8500,
) -> None:
    """Start the sandbox, sync it into a database of its own and print what landed.

    Each configured source is copied as demo-<name>, pointed at the sandbox. The demo writes to
    patientsync-demo.db in the working directory unless --database names another, so demo rows never land in
    the configured database.
    """
    from pipeline.app.demo import DEMO_DATABASE, run_demo
    from pipeline.sync.runner import RunOptions

    config = load_config(ctx)
    url = database or DEMO_DATABASE
    engine = open_database(config, url)
    err.print(f"demo database: {escape(shown_url(url))}", highlight=False)
    options = RunOptions()
    with progress_bars(options):
        results, summary = run_demo(config, engine, patients, options, noise)
    print_results(results)
    summary(out)
    if console:
        from canonical.errors import ServeError
        from pipeline.app.demo import demo_config
        from pipeline.app.web.serve import serve

        err.print(f"console on http://127.0.0.1:{console_port}/ (Ctrl-C stops it)", highlight=False)
        try:
            serve(demo_config(config, "http://127.0.0.1"), engine, "127.0.0.1", console_port)
        except ServeError as exc:
            fail(str(exc), 2)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)
