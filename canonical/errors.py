"""Every error patientsync raises on purpose, in one tree.

    PatientSyncError
    ├── ConfigError            the configuration file is invalid (exit status 2, before any request)
    ├── SourceError            talking to a source API failed; names the source and the stream
    │   ├── AuthError          401/403: the stream fails at once, no retry
    │   ├── FetchError         retries exhausted (429, 5xx, timeouts, dropped connections) or a 4xx
    │   ├── BodyError          a response body is not the documented shape
    │   └── ListingShifted     records were deleted or inserted before the walk's offset: re-read it
    ├── RecordError            one record failed validation or mapping: it is quarantined, the run goes on
    ├── LeaseHeldError         another process holds the stream's lease
    ├── LeaseLostError         our lease lapsed and another process took the stream: nothing more is committed
    ├── NotFound               a person, link or bulk decision a command names does not exist
    ├── ServeError             a port the daemon is to serve on cannot be listened on
    └── Stopped                the run was asked to stop (SIGINT/SIGTERM) before this work was done

Messages name the source, the record key and the field wherever they are known.
"""

from __future__ import annotations


class PatientSyncError(Exception):
    """Base of every deliberate patientsync error."""


class ConfigError(PatientSyncError):
    """The configuration is invalid; the message names the key."""


class SourceError(PatientSyncError):
    def __init__(self, source: str, stream: str, message: str) -> None:
        super().__init__(f"{source}/{stream}: {message}")
        self.source = source
        self.stream = stream


class AuthError(SourceError):
    def __init__(self, source: str, stream: str, status: int, detail: str = "") -> None:
        said = f" ({detail})" if detail else ""
        super().__init__(source, stream, f"HTTP {status}: the source refused the credentials{said}")
        self.status = status


class FetchError(SourceError):
    """Retries are exhausted, or the source answered with a status that retrying cannot fix."""

    def __init__(self, source: str, stream: str, message: str, status: int | None = None) -> None:
        super().__init__(source, stream, message)
        self.status = status  # the HTTP status when the source answered one (404: the record is gone)


class BodyError(SourceError):
    """A response body is not in any of the documented shapes."""


class ListingShifted(SourceError):
    """An offset listing changed before the walk's position: the record at the overlap is not the one the walk
    saw there last, so offsets now point at other records. The walk must re-read; it must not trust what it has."""

    def __init__(self, source: str, stream: str, offset: int) -> None:
        super().__init__(
            source, stream, f"the listing shifted: the record before offset {offset + 1} is not the last one seen"
        )
        self.offset = offset


class RecordError(PatientSyncError):
    """A record cannot be mapped; ``field`` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class LeaseHeldError(PatientSyncError):
    def __init__(self, source: str, stream: str, holder: str) -> None:
        super().__init__(f"{source}/{stream}: another process ({holder}) is running this stream")
        self.source = source
        self.stream = stream
        self.holder = holder


class LeaseLostError(PatientSyncError):
    """Our lease lapsed and another process took the stream: the page in hand must not be committed."""


class NotFound(PatientSyncError, LookupError):
    """What a command names (a person, a link, a bulk decision) does not exist; the message says where to look."""


class ServeError(PatientSyncError):
    """A port cannot be listened on."""


class Stopped(PatientSyncError):
    """The run was asked to stop before a request was sent or a batch arrived: an interruption, not a failure.

    Nothing is lost: the stream's cursor still points after the last committed batch.
    """
