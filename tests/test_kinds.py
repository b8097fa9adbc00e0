"""The kinds' declarations (pipeline.kinds): what they name by module and function exists."""

from __future__ import annotations

import pytest

from pipeline.config import parse
from pipeline.kinds import KINDS
from pipeline.kinds.base import Deferred


def test_every_mapping_a_kind_names_is_a_function_of_its_module() -> None:
    named = [
        (kind.name, stream, deferred)
        for kind in KINDS.values()
        for stream, spec in kind.streams.items()
        for deferred in (spec.mapping, spec.scrub)
        if deferred is not None
    ]
    assert len(named) == 7  # six streams' mappings and Particle's scrub
    for kind, stream, deferred in named:
        assert isinstance(deferred, Deferred), (kind, stream)
        assert deferred.module == f"mappings.{kind}", (kind, stream)
        assert callable(deferred.function) and deferred.function.__module__ == deferred.module, (kind, stream)


def test_a_mapping_that_cannot_be_imported_fails_its_stream_before_its_first_record() -> None:
    # Imported inside the per-record mapping, the error would quarantine every record and the run would succeed.
    spec = KINDS["prescrypto"].streams["patients"]
    broken = type(spec)(spec.stream, Deferred("mappings.no_such_kind", "to_patient"), spec.entity)
    source = {"kind": "prescrypto", "base_url": "http://127.0.0.1:9/prescrypto", "token": "t"}
    config = parse({"sources": {"rx": source}}, {})
    with pytest.raises(ModuleNotFoundError):
        broken.bound(config.sources["rx"])
