"""ASGI entry point: Django for HTTP, Channels for WebSockets (session or token auth)."""

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lab.settings")
# The lab serves its own few static files (htmx, the trace drawing, CSS) from
# the app and static/ folders, so daphne alone is a whole site, no collectstatic.
django_application = ASGIStaticFilesHandler(get_asgi_application())

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels_auth_token_middlewares.middleware import DRFAuthTokenMiddleware  # noqa: E402

from lab.classroom.routing import websocket_urlpatterns as classroom_routes  # noqa: E402
from lab.sandboxes.routing import websocket_urlpatterns as sandbox_routes  # noqa: E402
from lab.ws_security import BrowserOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        # Session first (browsers); a token header (scripts) when the session is anonymous.
        "websocket": BrowserOriginValidator(
            AuthMiddlewareStack(
                DRFAuthTokenMiddleware(URLRouter(sandbox_routes + classroom_routes))
            )
        ),
    }
)
