from django.urls import re_path

from .consumers import SandboxConsumer

websocket_urlpatterns = [
    re_path(r"^ws/sandboxes/(?P<sandbox_id>[0-9a-f]{32})/$", SandboxConsumer.as_asgi()),
]
