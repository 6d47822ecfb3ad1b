"""Origin checking for WebSockets that also admits scripts.

Browsers always send Origin, and a cross-site page riding on the learner's
session cookie is what the check stops. A script sends no Origin and
authenticates with its own token, so a missing Origin is allowed. A present
one must be the socket's own origin, compared as Django's CSRF check compares
it: scheme, host and port (or name one of CSRF_TRUSTED_ORIGINS). The host must
also be one of ALLOWED_HOSTS.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_tuple(url: str) -> tuple[str, str, int] | None:
    """Return (scheme, host, port) of an origin, the port made explicit; None if malformed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def _allowed_hosts() -> list[str]:
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = ["localhost", "127.0.0.1", "[::1]"]
    return allowed


def _page_scheme(scope, headers: dict[bytes, bytes]) -> str:
    """Return the scheme of the pages this socket belongs to (https behind a TLS proxy)."""
    if scope.get("scheme") == "wss":
        return "https"
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, secure_value = proxy_header
        header = name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin-1")
        if headers.get(header, b"").decode("latin-1").split(",")[0].strip() == secure_value:
            return "https"
    return "http"


def origin_allowed(scope) -> bool:
    """Tell whether a WebSocket handshake's Origin may open this lab's sockets."""
    headers = dict(scope.get("headers", []))
    origin = headers.get(b"origin")
    if origin is None:
        return True
    origin_text = origin.decode("latin-1")
    host = headers.get(b"host", b"").decode("latin-1")
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return False
    received = _origin_tuple(origin_text)
    if received is None:
        return False
    trusted = {_origin_tuple(item) for item in settings.CSRF_TRUSTED_ORIGINS if "*" not in item}
    return received in trusted or received == _origin_tuple(
        f"{_page_scheme(scope, headers)}://{host}"
    )


class SameOriginWebSocket:
    """ASGI middleware: deny a WebSocket handshake (HTTP 403) from another origin."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def BrowserOriginValidator(application):
    """Wrap ``application`` in the same-origin check (the name lab/asgi.py imports)."""
    return SameOriginWebSocket(application)
