"""Origin checking for WebSockets that also admits scripts.

Browsers always send Origin, and a cross-site page riding on the learner's
session cookie is what the check stops. A script sends no Origin and
authenticates with its own token, so a missing Origin is allowed; a present
one must name one of ALLOWED_HOSTS.
"""

from channels.security.websocket import OriginValidator
from django.conf import settings


class _Validator(OriginValidator):
    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        return self.validate_origin(parsed_origin)


def BrowserOriginValidator(application):
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = ["localhost", "127.0.0.1", "[::1]"]
    return _Validator(application, allowed)
