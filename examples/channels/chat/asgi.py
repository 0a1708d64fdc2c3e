"""ASGI entry point: ``daphne chat.asgi:application`` (HTTP and websockets)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat.settings")

# Set up Django (settings, app registry) before importing anything that uses models or settings.
http_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from chat.urls import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": http_application,
    # A websocket's Origin must be one of ALLOWED_HOSTS (browsers send it; other clients must).
    "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
})
