"""The source kinds: each module of this package declares one (``KIND``), and ``KINDS`` names them all.

A new kind is a module here (its streams and mappings, auth and options), a connector in ``connectors/<kind>.py``,
a mapping in ``mappings/<kind>.py`` and its simulated API in ``sandbox/<kind>.py`` (with its token in
``sandbox/tokens.py``: the product never imports its test double).
"""

from __future__ import annotations

from pipeline.kinds import gauges, particle, prescrypto, profiles
from pipeline.kinds.base import Kind, SourceBase, StreamSpec

KINDS: dict[str, Kind] = {kind.name: kind for kind in (prescrypto.KIND, profiles.KIND, gauges.KIND, particle.KIND)}


def stream_names(source: SourceBase) -> list[str]:
    """The source's streams in the kind's order, which puts parents (gauges patients) before their children."""
    kind = KINDS[source.kind].streams
    return [name for name in kind if name in source.streams] if source.streams else list(kind)


__all__ = ["KINDS", "Kind", "SourceBase", "StreamSpec", "stream_names"]
