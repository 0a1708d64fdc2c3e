"""Postgres administration through psycopg over SSH, never SQL in shell strings.

The superuser session reaches the server's Unix socket through an SSH channel running
``socat`` as the ``postgres`` system user (peer authentication: no admin password exists
anywhere). Here, psycopg connects to a Unix socket in a fresh 0700 directory that accepts its
one connection and goes away: nothing listens on TCP, and no other local user can connect.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from vpskit.errors import RemoteError
from vpskit.remote import Remote

PG_SOCKET = "/var/run/postgresql/.s.PGSQL.5432"
PORT = 5432  # names the local socket file: <directory>/.s.PGSQL.5432
CONNECT_TIMEOUT = 15


class OneConnection:
    """A listening Unix socket ``<directory>/.s.PGSQL.<PORT>`` in a fresh 0700 directory that
    accepts exactly one connection; it and its directory go once that one is accepted, or on
    :meth:`close`."""

    def __init__(self, timeout: float = CONNECT_TIMEOUT) -> None:
        self.directory = tempfile.mkdtemp(prefix="vpskit-pg-")  # 0700, ours
        self.path = os.path.join(self.directory, f".s.PGSQL.{PORT}")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._listener.settimeout(timeout)
            self._listener.bind(self.path)
            self._listener.listen(1)
        except OSError:
            self.close()
            raise

    def accept(self) -> socket.socket | None:
        """The one connection, or None when none came within the timeout (or after close)."""
        try:
            client, _ = self._listener.accept()
        except OSError:
            return None
        finally:
            self.close()
        client.settimeout(None)
        return client

    def close(self) -> None:
        self._listener.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def admin_connection(remote: Remote, dbname: str = "postgres") -> Iterator[psycopg.Connection]:
    """An autocommit psycopg connection as the ``postgres`` superuser on the server."""
    door, failed = OneConnection(), []
    threading.Thread(target=_relay, args=(remote, door, failed), daemon=True).start()
    try:
        try:
            conn = psycopg.connect(host=door.directory, port=PORT, user="postgres",
                                   dbname=dbname, connect_timeout=CONNECT_TIMEOUT,
                                   autocommit=True)
        except psycopg.OperationalError as exc:
            why = failed[0] if failed else str(exc).strip().splitlines()[-1]
            raise RemoteError(f"{remote.host}: cannot reach Postgres as its superuser over SSH: "
                              f"{why}") from None
        with conn:
            yield conn
    finally:
        door.close()


def _relay(remote: Remote, door: OneConnection, failed: list[Exception]) -> None:
    """Carry the one connection to the server's Postgres socket over its own SSH channel; an
    error opening the channel goes to ``failed`` and closes the connection."""
    client = door.accept()
    if client is None:
        return
    try:
        channel = remote.channel(remote.command(
            ["socat", "STDIO", f"UNIX-CONNECT:{PG_SOCKET}"], user="postgres"))
    except Exception as exc:  # a lost connection too: psycopg then fails at once
        failed.append(exc)
        client.close()
        return
    threading.Thread(target=_pump, args=(client.recv, channel.sendall, channel.shutdown_write),
                     daemon=True).start()
    _pump(channel.recv, client.sendall, client.close)


def _pump(recv, send, done) -> None:
    try:
        while data := recv(65536):
            send(data)
    except (OSError, EOFError):  # EOFError: paramiko's, for an SSH connection already closed
        pass
    finally:  # the other side may have closed the SSH connection already (EOFError)
        with contextlib.suppress(OSError, EOFError):
            done()


def ensure_role(conn: psycopg.Connection, role: str, password: str | None) -> str | None:
    """Create ``role`` (LOGIN) or set its password when one is given.

    Returns what changed, or None. Will not alter an existing role when ``password`` is None.
    """
    exists = role_exists(conn, role)
    if exists and password is None:
        return None
    if password is None:
        raise RemoteError(f"role {role} does not exist and no password was given")
    verb = "ALTER" if exists else "CREATE"
    conn.execute(sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
        sql.SQL(verb), sql.Identifier(role), sql.Literal(password)))
    return f"role {role} {'password reset' if exists else 'created'}"


def ensure_database(conn: psycopg.Connection, name: str, owner: str) -> str | None:
    """Create database ``name`` owned by ``owner``, closed to other roles. Never drops one."""
    if database_exists(conn, name):
        return None
    conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
        sql.Identifier(name), sql.Identifier(owner)))
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
    return f"database {name} created"


def role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def database_exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                        ).fetchone() is not None


def drop_database_and_role(conn: psycopg.Connection, name: str, role: str) -> list[str]:
    """Drop the site's database (closing its connections) and its role; what went."""
    gone = []
    if database_exists(conn, name):
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        gone.append(f"database {name}")
    if role_exists(conn, role):
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        gone.append(f"role {role}")
    return gone
