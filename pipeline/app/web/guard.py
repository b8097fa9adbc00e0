"""Who may use the console and how a request is checked: the bind rule, sessions, the token, CSRF and the
response headers.

- Bound to a loopback address without ``console.token``, every visitor is the local operator (``--operator``).
- With a token, a request carries it as ``Authorization: Bearer`` or belongs to a session signed in through the
  login form; the session cookie is HttpOnly and SameSite=Strict and holds a random id, never the token.
- Every POST carries a CSRF token: an HMAC of the session id under a key of this process, so a page of another
  site can neither read nor forge it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from canonical.errors import ConfigError

COOKIE = "patientsync_console"
SESSIONS = 10_000  # the oldest session is forgotten past this many (it signs in again)

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


class Guard:
    def __init__(self, token: str | None, operator: str) -> None:
        self.token = token or None
        self.operator = operator  # the local operator, and whoever signs in with the bearer token
        self._key = secrets.token_bytes(32)
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def session(self, sid: str | None) -> tuple[str, Session, bool]:
        """The cookie's session, or a new one: (id, session, whether it is new)."""
        if sid is not None and sid in self._sessions:
            self._sessions.move_to_end(sid)
            return sid, self._sessions[sid], False
        sid = secrets.token_urlsafe(32)
        session = Session() if self.token else Session(self.operator, True)
        self._sessions[sid] = session
        while len(self._sessions) > SESSIONS:
            self._sessions.popitem(last=False)
        return sid, session, True

    def sign_in(self, old_sid: str, token: str, operator: str) -> str | None:
        """A new signed-in session (a new id: the one used before signing in is dropped), or None for a wrong
        token."""
        if self.token is None or not hmac.compare_digest(token.encode(), self.token.encode()):
            return None
        self._sessions.pop(old_sid, None)
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = Session(operator, True)
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
