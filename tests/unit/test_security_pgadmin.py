"""The superuser session's local end: a Unix socket in a private directory taking one
connection, never a TCP listener. The server side is a fake Postgres on a socketpair that
stands in for the SSH channel."""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading
import time
from types import SimpleNamespace

import pytest

from vpskit import pgadmin
from vpskit.errors import RemoteError
from vpskit.remote import Remote


def message(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def fake_postgres(sock: socket.socket, seen: dict[str, str]) -> None:
    """Read the startup packet into ``seen``, log it in, then wait for it to leave."""
    body = recv_exact(sock, struct.unpack("!I", recv_exact(sock, 4))[0] - 4)
    words = [w.decode() for w in body[4:].split(b"\0")]
    seen.update(zip(words[::2], words[1::2], strict=False))
    sock.sendall(message(b"R", struct.pack("!I", 0))
                 + message(b"S", b"server_version\x0016.4\x00")
                 + message(b"S", b"client_encoding\x00UTF8\x00")
                 + message(b"K", struct.pack("!II", 42, 7)) + message(b"Z", b"I"))
    while sock.recv(65536):
        pass
    sock.close()


class Channel:
    """The SSH channel's side of a socketpair; remembers the command it was given."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.command = sock, None

    def exec_command(self, command: str) -> None:
        self.command = command

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)


def fake_remote(open_session) -> Remote:
    transport = SimpleNamespace(open_session=open_session)
    return Remote(SimpleNamespace(host="192.0.2.1", user="deploy",
                                  client=SimpleNamespace(get_transport=lambda: transport),
                                  is_connected=True))


@pytest.fixture
def listeners(monkeypatch) -> list[tuple[int, str, int]]:
    """Every socket that listens in this process: (family, address, mode of its directory)."""
    found, modes = [], {}
    bind, listen = socket.socket.bind, socket.socket.listen

    def recording_bind(self, address):
        bind(self, address)
        if self.family == socket.AF_UNIX:
            modes[address] = stat.S_IMODE(os.stat(os.path.dirname(address)).st_mode)

    def recording_listen(self, *args):
        found.append((self.family, self.getsockname(), modes.get(self.getsockname())))
        listen(self, *args)

    monkeypatch.setattr(socket.socket, "bind", recording_bind)
    monkeypatch.setattr(socket.socket, "listen", recording_listen)
    monkeypatch.setattr(socket, "create_server", lambda *a, **k: pytest.fail("a TCP listener"))
    return found


def test_security_admin_connection_listens_once_on_a_private_unix_socket(listeners):
    ours, theirs = socket.socketpair()
    seen: dict[str, str] = {}
    threading.Thread(target=fake_postgres, args=(theirs, seen), daemon=True).start()
    channel = Channel(ours)
    remote = fake_remote(lambda: channel)
    with pgadmin.admin_connection(remote, "shop_production") as conn:
        assert conn.info.server_version == 160004
        (family, path, mode), = listeners
        assert family == socket.AF_UNIX and mode == 0o700
        assert os.path.basename(path) == ".s.PGSQL.5432"
        assert not os.path.exists(os.path.dirname(path))  # its one connection taken: gone
    assert seen["user"] == "postgres" and seen["database"] == "shop_production"
    assert channel.command == ("sudo -n -H -u postgres -- socat STDIO "
                               "UNIX-CONNECT:/var/run/postgresql/.s.PGSQL.5432")
    assert remote.round_trips == 1


def test_security_a_channel_that_cannot_open_fails_at_once_with_its_reason(listeners):
    def refuse():
        raise OSError("Administratively prohibited")

    started = time.monotonic()
    expected = (r"^192\.0\.2\.1: cannot reach Postgres as its superuser over SSH: "
                r"Administratively prohibited$")
    with pytest.raises(RemoteError, match=expected), pgadmin.admin_connection(fake_remote(refuse)):
        pass
    assert time.monotonic() - started < 5
    assert not os.path.exists(os.path.dirname(listeners[0][1]))


def test_security_one_connection_socket_accepts_one_then_refuses():
    door = pgadmin.OneConnection(timeout=5)
    assert stat.S_IMODE(os.stat(door.directory).st_mode) == 0o700
    assert stat.S_ISSOCK(os.stat(door.path).st_mode)
    first = socket.socket(socket.AF_UNIX)
    first.connect(door.path)
    accepted = door.accept()
    accepted.sendall(b"hello")
    assert first.recv(5) == b"hello"
    with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
        socket.socket(socket.AF_UNIX).connect(door.path)
    assert not os.path.exists(door.directory)
    for s in (first, accepted):
        s.close()


def test_security_one_connection_socket_gives_up_after_its_timeout():
    door = pgadmin.OneConnection(timeout=0.1)
    assert door.accept() is None and not os.path.exists(door.directory)
    door.close()  # again: nothing left to do
