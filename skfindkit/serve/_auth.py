"""Who may read and who may add: tokens in the Authorization header.

A token is sent as ``Authorization: Bearer TOKEN`` (API clients) or, for
reading, as the password of HTTP Basic authentication (browsers ask for it on
a 401, then send it with every request of the page, its images included).
Adding takes the write token as a Bearer token only: a browser sends Basic
credentials by itself, even for a form that another site makes it post.
Tokens are compared in constant time. The write token also grants reading. With a read
token, every request but ``GET /health`` needs one of the two tokens before
its body is read; ``/health`` stays open for health probes and then says
only ``{"status": "ok"}``.
"""

import base64
import binascii
import hmac
import logging

from ._requests import ApiError

__all__ = ["Access", "ReadGuard"]

logger = logging.getLogger("skfindkit.serve")
OPEN_PATHS = ("/health",)
CHALLENGE = [(b"www-authenticate", b'Basic realm="skfindkit", charset="UTF-8"'),
             (b"www-authenticate", b'Bearer realm="skfindkit"')]


def given_token(header, basic=True):
    """The token in an Authorization header value (bytes), or None; a Basic
    password counts only with ``basic``."""
    scheme, _, value = (header or b"").strip().partition(b" ")
    value = value.strip()
    if scheme.lower() == b"bearer":
        return value or None
    if basic and scheme.lower() == b"basic":
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        _, colon, password = decoded.partition(b":")
        return password if colon and password else None
    return None


def _matches(given, token):
    return token is not None and given is not None and hmac.compare_digest(given, token)


class Access:
    """The server's tokens (str or None) and what a request's header grants."""

    def __init__(self, read_token, write_token):
        self.read = read_token.encode() if read_token else None
        self.write = write_token.encode() if write_token else None

    def can_read(self, header):
        """Whether a request with Authorization ``header`` (bytes or None) may read."""
        if self.read is None:
            return True
        given = given_token(header)
        return _matches(given, self.read) | _matches(given, self.write)  # both: same time

    def check_write(self, header):
        """Raise the ApiError (401/403) a request with ``header`` gets from ``POST /items``."""
        if self.write is None:
            raise ApiError(403, "adding items is disabled: start the server with a token "
                                "(--token or SKFINDKIT_SERVE_TOKEN) to enable POST /items")
        given = given_token(header, basic=False)
        if given is None:
            raise ApiError(401, "POST /items needs the header 'Authorization: Bearer <token>' "
                                "(not a browser's Basic login)")
        if not _matches(given, self.write):
            if _matches(given, self.read):
                raise ApiError(403, "this is the read token: POST /items needs the write token")
            raise ApiError(403, "wrong token")


def authorization(scope):
    """The raw Authorization header of an ASGI ``scope`` (bytes or None)."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return value
    return None


class ReadGuard:
    """Answer 401 to any request without a read (or write) token, before its body is read."""

    def __init__(self, app, access):
        self.app, self.access = app, access

    async def __call__(self, scope, receive, send):
        if (scope["type"] != "http" or scope["path"] in OPEN_PATHS
                or self.access.can_read(authorization(scope))):
            return await self.app(scope, receive, send)
        from starlette.responses import JSONResponse

        message = ("this server needs its read token: send 'Authorization: Bearer <token>', "
                   "or give the token as the password when the browser asks")
        logger.warning("%s %s -> 401: %s", scope["method"], scope["path"], message)
        response = JSONResponse({"detail": message}, status_code=401)
        response.raw_headers.extend(CHALLENGE)
        await response(scope, receive, send)
