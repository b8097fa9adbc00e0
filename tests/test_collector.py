"""The collector's settings for a command's process (pipeline.sync.collector), in a process of their own: they
are process-wide."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
import pipeline.app.cli
from pipeline.sync import collector
young = gc.get_threshold()[0]
tracked = len(gc.get_objects())
collector.freeze_imports()
frozen = gc.get_freeze_count()
kept = [[n] for n in range(1000)]
collector.freeze_imports()
print(young, tracked, frozen, gc.get_freeze_count() - frozen)
"""


def test_a_command_collects_the_young_less_often_and_freezes_its_imports_once() -> None:
    from pipeline.sync.collector import YOUNG_COLLECTION_EVERY

    ran = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    young, tracked, frozen, later = map(int, ran.stdout.split())
    assert young == YOUNG_COLLECTION_EVERY  # from the command line's import, before any command runs
    assert frozen >= tracked > 10_000  # every object alive: out of every later collection's walk
    assert later == 0  # once a process: what a run makes afterwards stays collectable
