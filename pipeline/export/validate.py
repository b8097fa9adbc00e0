"""Validation of exported resources against the FHIR R4B models of ``fhir.resources`` (``export --validate``,
and the tests). R4B is R4 (4.0.1) with fixes; the resources exported here read the same in both.

Problems name the field and the rule, never the value: a value is patient data.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type)


def problems(resource: dict[str, Any]) -> list[str]:
    """What is wrong with one resource, as "field.path: rule" lines; empty when it validates."""
    from pydantic.v1 import ValidationError

    try:
        _model(resource["resourceType"]).parse_obj(resource)
    except ValidationError as exc:
        return [f"{'.'.join(str(part) for part in error['loc'])}: {error['type']}" for error in exc.errors()]
    return []
