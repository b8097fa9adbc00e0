"""Who may use the console and how a request is checked: the bind rule, sessions, the token, CSRF and the
response headers.

- Bound to a loopback address without ``console.token``, every visitor is the local operator (``--operator``).
- Without a token, only requests addressed to a loopback name are served (no DNS rebinding).
- With a token, a request carries it as ``Authorization: Bearer`` or belongs to a session signed in through the
  login form; the session cookie is HttpOnly and SameSite=Strict and holds a random id, never the token.
- Every POST carries a CSRF token: an HMAC of the session id under a key of this process, so a page of another
  site can neither read nor forge it; a POST whose Origin is another site is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from canonical.errors import ConfigError

COOKIE = "patientsync_console"
SESSIONS = 1_000  # signed-in sessions kept; past this many the longest idle signs in again
IDLE_SECONDS = 8 * 3600  # a session idle this long signs in again
_SID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)

# No inline script or style at all: a value that escaped the templates' escaping could still run nothing.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def is_loopback(host: str) -> bool:
    """
    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.1.2.3")]
    [True, True, True, False, False]
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve patient data beyond this machine without a token."""
    if not token and not is_loopback(host):
        raise ConfigError(
            f"console --host {host}: only a loopback address may be served without a token; set console.token "
            "(or PATIENTSYNC__CONSOLE__TOKEN)"
        )


@dataclass
class Session:
    operator: str | None = None
    signed_in: bool = False
    seen: float = 0.0  # monotonic time of its last request


class Guard:
    """Only signed-in sessions are kept, and only with a token: a visitor who has not signed in holds a cookie
    with a random id that nothing stores (its CSRF token is an HMAC of it), so requests without a token cannot
    crowd the signed-in stewards out."""

    def __init__(self, token: str | None, operator: str) -> None:
        self.token = token or None
        self.operator = operator  # the local operator, and whoever signs in with the bearer token
        self._key = secrets.token_bytes(32)
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def session(self, sid: str | None, now: float) -> tuple[str, Session, bool]:
        """The cookie's session: (its id, the session, whether the cookie is to be set). Without a token every
        visitor is the local operator."""
        fresh = sid is None or not _SID.fullmatch(sid)
        if fresh:
            sid = secrets.token_urlsafe(32)
        assert sid is not None
        if self.token is None:
            return sid, Session(self.operator, True, now), fresh
        found = self._sessions.get(sid)
        if found is None or now - found.seen > IDLE_SECONDS:
            self._sessions.pop(sid, None)
            return sid, Session(), fresh
        found.seen = now
        self._sessions.move_to_end(sid)
        return sid, found, False

    def sign_in(self, old_sid: str, token: str, operator: str, now: float) -> str | None:
        """A new signed-in session (a new id: the one used before signing in is dropped), or None for a wrong
        token."""
        if self.token is None or not hmac.compare_digest(token.encode(), self.token.encode()):
            return None
        self._sessions.pop(old_sid, None)
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = Session(operator, True, now)
        while len(self._sessions) > SESSIONS:
            self._sessions.popitem(last=False)  # the longest idle
        return sid

    def sign_out(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def bearer(self, authorization: str | None) -> bool:
        scheme, _, value = (authorization or "").partition(" ")
        if self.token is None or scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.strip().encode(), self.token.encode())

    def csrf(self, sid: str) -> str:
        return hmac.new(self._key, sid.encode(), hashlib.sha256).hexdigest()

    def csrf_holds(self, sid: str, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.csrf(sid).encode())

    def host_allowed(self, host: str | None) -> bool:
        """Without a token, only a request addressed to a loopback name: a page of another site whose name was
        made to resolve to 127.0.0.1 (DNS rebinding) is refused. With one, the token is what guards."""
        return self.token is not None or is_loopback(_hostname(host or ""))


def same_origin(origin: str | None, fetch_site: str | None, host: str | None) -> bool:
    """Whether a POST, by what the browser says of it, comes from this console's own pages. Under
    ``Referrer-Policy: no-referrer`` a browser sends ``Origin: null`` even for its own forms: then
    ``Sec-Fetch-Site`` speaks. A client that sends neither (a script of the operator's) passes to the CSRF check.

    >>> same_origin("http://127.0.0.1:8500", None, "127.0.0.1:8500"), same_origin("null", "same-origin", "x")
    (True, True)
    >>> same_origin("http://evil.example", None, "127.0.0.1:8500"), same_origin("null", "cross-site", "x")
    (False, False)
    """
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    if origin is None or origin == "null":
        return True
    return origin.partition("://")[2] == (host or "")


def _hostname(host: str) -> str:
    """
    >>> _hostname("[::1]:8500"), _hostname("127.0.0.1:8500"), _hostname("localhost")
    ('::1', '127.0.0.1', 'localhost')
    """
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host
