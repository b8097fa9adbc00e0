"""What a person at a terminal sees: logs printed above the progress bars, bars that stop with their stream,
one-line errors for bad options, and help text that keeps what it says."""

from __future__ import annotations

import io

import structlog
from rich.console import Console

from pipeline.app import logs
from pipeline.app.commands import export, running
from pipeline.sync.runner import RunOptions, RunResult
from tests.support import cli


def test_log_lines_go_through_the_live_display_and_a_finished_bar_stops(monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(running, "err", Console(file=screen, force_terminal=True, width=100))
    logs.configure("INFO", json=False)
    options = RunOptions()
    try:
        with running.progress_bars(options) as bars:
            assert options.progress is not None and options.done is not None and bars is not None
            options.progress("rx", "patients", 50, None)
            structlog.get_logger().warning("retrying", source="rx", attempt=1)
            options.done(RunResult("rx", "patients", "sweep", status="succeeded"))
            task = bars.tasks[0]
            assert task.finished and task.stop_time is not None  # its clock no longer runs
    finally:
        structlog.reset_defaults()
    # The line was printed by the display's console (above the bars), not written across them.
    assert "retrying" in screen.getvalue()
    line = next(line for line in screen.getvalue().splitlines() if "retrying" in line)
    assert "rx/patients" not in line


def test_an_export_shows_a_bar_per_resource_type_on_a_terminal(monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(export, "err", Console(file=screen, force_terminal=True, width=100))
    with export.export_progress() as update:
        assert update is not None
        update("Patient", 0, 305)
        update("Patient", 305, 305)
        update("Observation", 500, 945)
    assert "Patient" in screen.getvalue() and "305/305" in screen.getvalue() and "500/945" in screen.getvalue()
    monkeypatch.setattr(export, "err", Console(file=io.StringIO(), force_terminal=False))
    with export.export_progress() as update:
        assert update is None  # not a terminal: no bar, no cost of counting


def test_a_bad_log_level_or_format_is_one_line_and_exit_2():
    for args in (("--log-level", "bogus", "status"), ("--log-format", "xml", "status")):
        proc = cli(*args)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_config_option_keeps_its_default_in_the_help():
    text = " ".join(cli("--help").stdout.replace("│", " ").split())  # rich boxes and wraps the help
    assert "(default: $PATIENTSYNC_CONFIG, else ./config.yaml)" in text
