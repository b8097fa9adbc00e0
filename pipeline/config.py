"""The configuration file: read, overridden from the environment (``pipeline.overrides``), ``${VAR}``
interpolated and validated once, before any request.

Every problem is a ``ConfigError`` whose message names the key (``sources.prescrypto.token: ...``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from canonical.errors import ConfigError
from pipeline.kinds import KINDS, SourceBase
from pipeline.kinds.base import Strict, hmac_key
from pipeline.overrides import Literal
from pipeline.overrides import apply as apply_overrides
from pipeline.storage import urls

DEFAULT_PATH = "config.yaml"
ENV_PATH = "PATIENTSYNC_CONFIG"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class DatabaseConfig(Strict):
    url: str = "sqlite:///patientsync.db"

    @field_validator("url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        try:
            parsed = urls.parse(url)
        except ValueError as exc:
            raise ValueError(f"{exc} (it is not quoted here: it may hold a password)") from None
        if parsed.backend not in ("sqlite", "postgresql"):
            raise ValueError(f"{parsed.backend!r} is not supported; use sqlite:/// or postgresql+psycopg://")
        if parsed.backend == "postgresql" and parsed.drivername != "postgresql+psycopg":
            parsed = parsed.with_driver("postgresql+psycopg")  # the driver we ship
        return parsed.render(hide_password=False)


# One model per kind, told apart by ``kind``: each kind's own keys are known to it only (pipeline.kinds).
if TYPE_CHECKING:
    SourceConfig = SourceBase
else:
    _ONE_OF = Union[tuple(kind.config for kind in KINDS.values())]  # noqa: UP007 - built at run time
    SourceConfig = Annotated[_ONE_OF, Field(discriminator="kind")]


class IdentityConfig(Strict):
    """Linking patients into persons (README: Identity)."""

    # The one HMAC key for SSN hashes of every source: hashes made with different keys never match.
    hash_key: SecretStr | None = None
    match_threshold: float = Field(default=0.99, gt=0, le=1)
    review_threshold: float = Field(default=0.5, gt=0, le=1)
    # Golden record: per field (or "default"), the sources whose value wins, first to last.
    source_priority: dict[str, list[str]] = {}
    # A match key held by more patients than this (1900-01-01, a very common name) blocks nothing.
    block_bound: int = Field(default=100, ge=2, le=100_000)
    link_during_sync: bool = True  # False: only `patientsync link` links

    _hash_key = field_validator("hash_key")(hmac_key)

    @model_validator(mode="after")
    def _ordered(self) -> IdentityConfig:
        if self.review_threshold > self.match_threshold:
            raise ValueError("review_threshold must not be above match_threshold")
        return self


_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")


def _uri(value: str) -> str:
    if not _URI.fullmatch(value):
        raise ValueError(f"{value!r} is not a URI (such as https://example.org/ids or urn:oid:1.2.3)")
    return value


class FhirConfig(Strict):
    """The FHIR export (README: FHIR export)."""

    # source -> id_type -> the identifier system URI integrators know it by; any other identifier's system is
    # urn:patientsync:<source>:<id_type>.
    identifier_systems: dict[str, dict[str, str]] = {}
    license_system: str = "urn:patientsync:license"  # of a Practitioner's licence (cédula) number

    @field_validator("identifier_systems")
    @classmethod
    def _uris(cls, systems: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for by_type in systems.values():
            for uri in by_type.values():
                _uri(uri)
        return systems

    _license_uri = field_validator("license_system")(lambda cls, v: _uri(v))


class ExportConfig(Strict):
    fhir: FhirConfig = FhirConfig()


class ConsoleConfig(Strict):
    """The steward's console (README: The steward's console)."""

    # Required to serve beyond a loopback address; sent as a bearer token or typed into the login form.
    token: SecretStr | None = None

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None or not token.get_secret_value():
            return None  # `${VAR:-}` unset: no token, loopback only
        if len(token.get_secret_value()) < 16:
            raise ValueError("at least 16 characters: a short token is guessed")
        return token


class Config(Strict):
    database: DatabaseConfig = DatabaseConfig()
    sources: dict[str, SourceConfig]
    identity: IdentityConfig = Field(default_factory=lambda: IdentityConfig())
    export: ExportConfig = ExportConfig()
    console: ConsoleConfig = ConsoleConfig()

    @model_validator(mode="after")
    def _one_hash_key(self) -> Config:
        """identity.hash_key, when set, is every hashing source's key: one person's SSN hashes alike everywhere."""
        key = self.identity.hash_key
        if key is None:
            return self
        sources = {
            name: source.model_copy(update={"ssn_hash_key": key}) if KINDS[source.kind].hashes_ssns else source
            for name, source in self.sources.items()
        }
        return self.model_copy(update={"sources": sources})

    @field_validator("sources")
    @classmethod
    def _named(cls, sources: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        if not sources:
            raise ValueError("at least one source is needed")
        for name in sources:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise ValueError(f"source name {name!r} may hold only letters, digits, '_', '.' and '-'")
        return sources


def secrets(config: Config) -> list[str]:
    """Every secret the configuration holds: masked wherever it could appear in a log or a message."""
    found = [secret for source in config.sources.values() for secret in source.secrets()]
    if config.identity.hash_key is not None:
        found.append(config.identity.hash_key.get_secret_value())
    if config.console.token is not None:
        found.append(config.console.token.get_secret_value())
    return [*found, *urls.parse(config.database.url).secrets()]


def resolve_path(explicit: str | Path | None) -> Path:
    return Path(explicit or os.environ.get(ENV_PATH) or DEFAULT_PATH)


def load(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read and validate the configuration; raise ``ConfigError`` naming the key on any problem."""
    file = resolve_path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such configuration file (use --config or ${ENV_PATH})") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        # Only where and what: PyYAML's own message quotes the offending line, which may hold a token.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        # PyYAML's problem may quote a token, an alias or a tag from the file: longer quotes are cut out.
        problem = re.sub(r"'[^']{3,}'|\"[^\"]{3,}\"", "…", getattr(exc, "problem", None) or "syntax error")
        raise ConfigError(f"{file}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping with 'database' and 'sources'")
    return parse(raw, os.environ if environ is None else environ)


def parse(raw: dict[str, Any], environ: dict[str, str] | os._Environ[str]) -> Config:
    interpolation = _Interpolation(environ)
    overridden, overrides = apply_overrides(raw, environ)
    interpolation.came_from.update(overrides.texts)
    data = interpolation.value(overridden, ())
    try:
        try:
            config = Config.model_validate(data)
        except ValidationError as exc:
            said = dict.fromkeys(overrides.named(_describe(error), error["type"]) for error in exc.errors())
            raise ConfigError("; ".join(said)) from None
        try:
            _check_streams(config)
        except ConfigError as exc:
            raise ConfigError(overrides.named(str(exc))) from None
    except ConfigError as exc:
        raise ConfigError(interpolation.unquoted(str(exc))) from None
    return config


class _Interpolation:
    """``${VAR}`` and ``${VAR:-default}`` replaced, remembering what came from them: an error message must never
    echo such a value (a token put where a stream name belongs would be printed back)."""

    def __init__(self, environ: Any) -> None:
        self.environ = environ
        self.came_from: dict[str, str] = {}  # interpolated text -> the variable it came from

    def value(self, value: Any, where: tuple[str, ...]) -> Any:
        if isinstance(value, Literal):  # from the environment: as it is
            return value.value
        if isinstance(value, dict):
            return {key: self.value(item, (*where, str(key))) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item, (*where, str(i))) for i, item in enumerate(value)]
        if not isinstance(value, str):
            return value

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in self.environ:
                found = str(self.environ[name])
            elif default is not None:
                found = default
            else:
                raise ConfigError(f"{'.'.join(where)}: environment variable {name} is not set")
            self.came_from[found] = name
            return found

        result = _VAR.sub(substitute, value)
        if result != value:
            self.came_from[result] = _VAR.search(value).group(1)  # type: ignore[union-attr]
        return result

    def unquoted(self, message: str) -> str:
        """``message`` with every interpolated value (of three characters or more) replaced by its variable."""
        for text in sorted(self.came_from, key=len, reverse=True):
            if len(text) >= 3 and text in message:
                told = f"<the value of ${{{self.came_from[text]}}}>"
                message = re.sub(rf"(?<!\w){re.escape(text)}(?!\w)", told, message)  # names hold no backslash
        return message


def _describe(error: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    if loc[:1] == ["sources"] and len(loc) > 2 and loc[2] in KINDS:
        del loc[2]  # the kind's model, which pydantic names in the location: the key is the same for the user
    key = ".".join(loc)
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        said = "required" if error["type"] == "union_tag_not_found" else "unknown kind"
        return f"{key}.kind: {said} (one of {', '.join(KINDS)})"
    if error["type"] == "extra_forbidden":
        owners = [name for name, kind in KINDS.items() if loc[-1] in kind.config.model_fields]
        if owners and len(loc) == 3:
            return f"{'.'.join(loc[:2])}: {loc[-1]} applies to kind {' or '.join(owners)} only"
        return f"{key}: unknown key"
    if error["type"] == "missing":
        return f"{key}: required"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key}: {message}"


def _check_streams(config: Config) -> None:
    for name, source in config.sources.items():
        known = KINDS[source.kind].streams
        chosen = source.streams or []
        for stream in chosen:
            if stream not in known:
                raise ConfigError(f"sources.{name}.streams: unknown stream {stream!r} (known: {', '.join(known)})")
            parent = known[stream].stream.parent
            if parent is not None and parent.stream not in chosen:
                # Without it the fan-out would follow only what an earlier configuration stored, silently.
                raise ConfigError(
                    f"sources.{name}.streams: {stream!r} makes one request per stored {parent.stream!r} record, "
                    f"so {parent.stream!r} must be synced too: add it"
                )
