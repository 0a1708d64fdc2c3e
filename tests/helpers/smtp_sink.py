"""An SMTP server on the test host that keeps every message it is given (aiosmtpd), for the
mail a VPS sends out."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email.message import Message

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's)
        self.messages.append(message_from_bytes(envelope.original_content))
        return "250 OK"

    def subjects(self, since: int = 0) -> list[str]:
        """Each message's subject, unfolded."""
        return [" ".join(str(m["Subject"]).split()) for m in self.messages[since:]]


@contextmanager
def sink(address: str) -> Iterator[tuple[Sink, str]]:
    """A sink listening on ``address`` (the test host as a VPS sees it): (sink, "host:port")."""
    with socket.socket() as s:
        s.bind((address, 0))
        port = s.getsockname()[1]
    found = Sink()
    controller = Controller(found, hostname=address, port=port)
    controller.start()
    try:
        yield found, f"{address}:{port}"
    finally:
        controller.stop()
