"""The ``patientsync`` command line (typer): the global options, and the commands and command groups of
``pipeline.app.commands`` assembled into one program."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.app.commands import demo, export, identity, operations, running, status, web
from pipeline.app.console import Globals, fail, out
from pipeline.sync import collector

# Before a command imports what it runs (SQLAlchemy, the table models, the runner): they and the records a run
# streams are hundreds of thousands of objects, which the collector's default would walk again and again.
collector.collect_less()

app = typer.Typer(
    help="Keep a canonical patient database in step with several patient APIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("patientsync")
        except PackageNotFoundError:  # run from a checkout that was never installed
            installed = "unknown (not installed)"
        out.print(f"patientsync {installed}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            # Rich reads "[...]" as markup and would swallow it: round brackets.
            help="Configuration file (default: $PATIENTSYNC_CONFIG, else ./config.yaml).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    log_format: Annotated[
        str,
        typer.Option(metavar="FORMAT", help="json, console, or auto: json unless stderr is a terminal."),
    ] = "auto",
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the installed version and exit."),
    ] = None,
) -> None:
    from pipeline.app import logs

    if log_level.upper() not in logs.LEVELS:
        fail(f"--log-level: unknown level (use one of {', '.join(logs.LEVELS)})", 2)
    if log_format not in logs.FORMATS:
        fail(f"--log-format: unknown format (use one of {', '.join(logs.FORMATS)})", 2)
    logs.configure(log_level, json=None if log_format == "auto" else log_format == "json")
    ctx.obj = Globals(config, log_level)


for command in (running.sync, running.backfill, running.daemon, status.status, identity.link):
    app.command()(command)
app.add_typer(identity.review_app, name="review")
app.command()(identity.person)
app.command()(web.console)
app.add_typer(operations.state_app, name="state")
app.add_typer(operations.quarantine_app, name="quarantine")
app.add_typer(export.export_app, name="export")
app.command()(demo.sandbox)
app.command()(demo.demo)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
