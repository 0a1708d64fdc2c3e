from channels.generic.websocket import AsyncWebsocketConsumer

GROUP = "echo"


class EchoConsumer(AsyncWebsocketConsumer):
    """``/ws/echo/``: every frame goes out to the ``echo`` group through the channel layer and
    comes back from it, so a reply proves the layer (Redis in production) works. Every socket
    joined to the group, in any process or release, receives every frame."""

    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.channel_layer.group_send(
            GROUP, {"type": "echo.message", "text": text_data, "bytes": bytes_data})

    async def echo_message(self, event: dict) -> None:
        await self.send(text_data=event["text"], bytes_data=event["bytes"])
