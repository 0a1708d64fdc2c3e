from django.urls import path

from . import consumers, views

urlpatterns = [
    path("", views.index, name="index"),
    path("health/", views.health, name="health"),
]

websocket_urlpatterns = [
    path("ws/echo/", consumers.EchoConsumer.as_asgi()),
]
