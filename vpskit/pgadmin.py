"""Postgres administration through psycopg over SSH, never SQL in shell strings.

The superuser session reaches the server's Unix socket through an SSH channel running
``socat`` as the ``postgres`` system user (peer authentication: no admin password exists
anywhere). A local listener on 127.0.0.1 relays each psycopg connection over its own channel.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from vpskit.errors import RemoteError
from vpskit.remote import Remote

PG_SOCKET = "/var/run/postgresql/.s.PGSQL.5432"


@contextmanager
def admin_connection(remote: Remote, dbname: str = "postgres") -> Iterator[psycopg.Connection]:
    """An autocommit psycopg connection as the ``postgres`` superuser on the server."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()
    threading.Thread(target=_accept, args=(remote, listener, stop), daemon=True).start()
    try:
        try:
            conn = psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=dbname,
                                   sslmode="disable", connect_timeout=15, autocommit=True)
        except psycopg.OperationalError as exc:
            raise RemoteError(f"{remote.host}: cannot reach Postgres as its superuser over SSH: "
                              f"{str(exc).strip().splitlines()[-1]}") from None
        with conn:
            yield conn
    finally:
        stop.set()
        listener.close()


def _accept(remote: Remote, listener: socket.socket, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            client, _ = listener.accept()
        except OSError:
            return
        remote.round_trips += 1
        channel = remote.conn.client.get_transport().open_session()
        channel.exec_command(remote.command(
            ["socat", "STDIO", f"UNIX-CONNECT:{PG_SOCKET}"], user="postgres"))
        threading.Thread(target=_pump, args=(client.recv, channel.sendall, channel.shutdown_write),
                         daemon=True).start()
        threading.Thread(target=_pump, args=(channel.recv, client.sendall, client.close),
                         daemon=True).start()


def _pump(recv, send, done) -> None:
    try:
        while data := recv(65536):
            send(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
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
