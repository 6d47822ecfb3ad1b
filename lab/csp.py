"""A Content-Security-Policy on every response: scripts only from the lab's own files.

Django 5.2 has no built-in CSP. The pages keep no inline script and no inline
event handler (their data travels in json_script blocks, which never run), so
script-src needs nothing but 'self'. Styles allow inline attributes: the
progress bars set their width that way and htmx adds its indicator style.
"""

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse


def policy_for(request: HttpRequest) -> str:
    """Return the policy for one request; the WebSocket goes to the page's own host."""
    socket_scheme = "wss" if request.is_secure() else "ws"
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data:",
        "connect-src": f"'self' {socket_scheme}://{request.get_host()}",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            try:
                response["Content-Security-Policy"] = policy_for(request)
            except DisallowedHost:
                pass  # The response is already the 400 for the bad Host header.
        return response
