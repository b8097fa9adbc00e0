"""Configuration keys set from the environment: ``PATIENTSYNC__SOURCES__PRESCRYPTO__TOKEN`` sets
``sources.prescrypto.token``, so that a secret can live in a container's environment.

Applied to the file's contents before ``${VAR}`` interpolation (an overridden ``${VAR}`` need not be set) and
before validation. Key parts are matched whatever their case, with ``_`` also standing for the ``-`` and ``.``
of a name (source names may hold them; variable names may not). A value starting with ``[`` or ``{`` is read as
YAML (a list of streams); any other stays text for the model to convert (``100``, ``true``), so a token of
digits keeps its leading zeros. Every message about an overridden key names its variable and never its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from canonical.errors import ConfigError

PREFIX = "PATIENTSYNC__"


@dataclass(frozen=True)
class Literal:
    """A value from the environment: taken as it is, never interpolated."""

    value: Any


@dataclass
class Overrides:
    keys: dict[str, str] = field(default_factory=dict)  # dotted key -> the variable that set it
    texts: dict[str, str] = field(default_factory=dict)  # every text an override brought -> its variable

    def named(self, message: str, kind: str | None = None) -> str:
        """``message`` naming the variable when it is about an overridden key. A message about the key itself
        (or a key inside its value) says only that the value is refused, and the kind of problem (pydantic's
        error type, such as ``int_parsing``): a library's words may quote any part of it. One about a section
        that mentions the key (a rule between two keys) is ours, and kept."""
        key, _, said = message.partition(": ")
        for path, variable in self.keys.items():
            if key == path or key.startswith(f"{path}."):
                why = f"{kind.replace('_', ' ')}; " if kind else ""
                return f"{path}: the value of {variable} is refused ({why}it is not shown)"
            if path.startswith(f"{key}.") and _mentions(said, path):
                return f"{message} (set by {variable})"
        return message


def _mentions(said: str, path: str) -> bool:
    return re.search(rf"\b{re.escape(path.rsplit('.', 1)[-1])}\b", said) is not None


def apply(raw: dict[str, Any], environ: Mapping[str, str]) -> tuple[dict[str, Any], Overrides]:
    """``raw`` (the file's contents, not changed) with every override applied, as ``Literal`` values."""
    data = _copy(raw)
    found = Overrides()
    for variable in sorted(environ):
        if not variable.upper().startswith(PREFIX):
            continue
        segments = variable[len(PREFIX) :].split("__")
        if not all(segments):
            raise ConfigError(f"{variable}: not a configuration key (the key's parts are joined by '__')")
        text = str(environ[variable])
        value = _value(text, variable)
        path = _set(data, segments, value, variable)
        found.keys[".".join(path)] = variable
        for part in (text, *_texts(value)):
            found.texts[part] = variable
    return data, found


def _set(data: dict[str, Any], segments: list[str], value: Any, variable: str) -> list[str]:
    node, path = data, list[str]()
    # A new key spelt as the source it names (identifier_systems: {demo-rx: ...}), not as the variable's part.
    sources: dict[str, Any] = data["sources"] if isinstance(data.get("sources"), dict) else {}
    for depth, segment in enumerate(segments):
        key = _matching_key(node, segment, variable) or _matching_key(sources, segment, variable) or segment.lower()
        if path == ["sources"] and key not in node:
            raise ConfigError(f"{variable}: no source {segment.lower()!r} in the configuration file")
        path.append(key)
        if depth == len(segments) - 1:
            node[key] = Literal(value)
            break
        if node.get(key) is None:  # absent, or a section left empty in the file (`identity:`)
            node[key] = {}
        node = node[key]
        if not isinstance(node, dict):
            raise ConfigError(f"{variable}: {'.'.join(path)} is a value, not a section")
    return path


def _matching_key(node: Mapping[str, Any], segment: str, variable: str) -> str | None:
    wanted = segment.lower()
    matches = [str(key) for key in node if re.sub(r"[-.]", "_", str(key)).lower() == wanted]
    if len(matches) > 1:
        raise ConfigError(f"{variable}: matches more than one key ({', '.join(matches)})")
    return matches[0] if matches else None


def _value(text: str, variable: str) -> Any:
    if not text.lstrip().startswith(("[", "{")):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{variable}: not a valid YAML list or mapping") from None


def _texts(value: Any) -> list[str]:
    """Every text inside a YAML value (a stream name in a list, a URI in a mapping), keys included."""
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (*_texts(k), *_texts(v))]
    if isinstance(value, list):
        return [t for item in value for t in _texts(item)]
    return [value] if isinstance(value, str) else []


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
