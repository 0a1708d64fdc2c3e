"""Open a verified SSH connection to a host, or fail with one line naming host:port and the fix."""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path

import paramiko
from fabric import Connection

from vpskit.config import Host
from vpskit.endpoints import known_hosts_name
from vpskit.errors import ConnectError, RemoteError
from vpskit.remote import Remote

log = logging.getLogger(__name__)


class AuthError(ConnectError):
    """The server answered but refused the user or key (callers may retry as another user)."""


class AcceptNew(paramiko.MissingHostKeyPolicy):
    """Like ssh's ``StrictHostKeyChecking=accept-new``: trust and record a first key, warn."""

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key) -> None:
        self.known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.known_hosts.open("a") as handle:
            handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)
        log.warning(
            "added %s key %s of %s to %s",
            key.get_name(), key.fingerprint, hostname, self.known_hosts,
        )


class NoDelayConnection(Connection):
    """A Fabric connection whose TCP socket sends each packet at once (``TCP_NODELAY``, as
    OpenSSH does): without it every command waits about 40 ms on Nagle's algorithm and the
    server's delayed ACK. Each (re)open makes a new socket."""

    def open(self):
        if not self.is_connected:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connect_kwargs = {**self.connect_kwargs, "sock": sock}
        return super().open()


def connect(
    host: Host, user: str | None = None, known_hosts: str | None = None, timeout: float = 10
) -> Connection:
    """Open a Fabric connection to ``host`` as ``user`` (default ``host.user``) and run ``true``.

    With ``known_hosts`` (default ``host.known_hosts``), the host key must be in that file
    (strict, like ``StrictHostKeyChecking=yes``). Without one, keys come from
    ``~/.ssh/known_hosts`` and a host seen for the first time is added there with a warning; a
    changed key always fails. ``host.key``, if set, is the only key tried (no agent).
    Raises ConnectError (one line: where, what, the fix) for an unreachable host, a refused
    port, a rejected key (:class:`AuthError`) or an unknown/changed host key, within about
    ``timeout`` seconds.
    """
    user = user or host.user
    known_hosts = known_hosts or host.known_hosts
    where = f"{user}@{host.ssh_target}:{host.port}"
    options: dict = {"banner_timeout": timeout, "auth_timeout": timeout}
    if host.key:
        if not Path(host.key).is_file():
            raise ConnectError(f"{where}: key file {host.key} not found: fix hosts[].key")
        options.update(key_filename=host.key, look_for_keys=False, allow_agent=False)
    conn = NoDelayConnection(
        host.ssh_target, user=user, port=host.port, connect_timeout=timeout, connect_kwargs=options
    )
    if known_hosts:
        if not Path(known_hosts).is_file():
            raise ConnectError(f"{where}: known_hosts file {known_hosts} not found")
        conn.client.load_host_keys(known_hosts)
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        mine = Path.home() / ".ssh" / "known_hosts"
        if mine.is_file():
            conn.client.load_system_host_keys(str(mine))
        conn.client.set_missing_host_key_policy(AcceptNew(mine))
    try:
        conn.open()
        Remote(conn).run(["true"], sudo=False, timeout=timeout)
    except Exception as exc:
        conn.close()
        kh = known_hosts or "~/.ssh/known_hosts"
        error = AuthError if isinstance(exc, paramiko.AuthenticationException) else ConnectError
        raise error(f"{where}: {_explain(exc, host, user, kh, timeout)}") from exc
    return conn


def _explain(exc: Exception, host: Host, user: str, known_hosts: str, timeout: float) -> str:
    """What went wrong and what to do, in one line."""
    name = known_hosts_name(host.ssh_target, host.port)
    if isinstance(exc, paramiko.BadHostKeyException):
        return (
            f"host key CHANGED (now {exc.key.get_name()} {exc.key.fingerprint}): if the server "
            f"was rebuilt, run `ssh-keygen -R {name} -f {known_hosts}`, else stop: it may not be "
            "your server"
        )
    if isinstance(exc, paramiko.AuthenticationException):
        key = host.key or "your agent/default keys"
        return (
            f"authentication failed with {key}: add its public key to ~{user}/.ssh/authorized_keys "
            "on the server, or set the right hosts[].key"
        )
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
        return (
            f"host key unknown (not in {known_hosts}): check its fingerprint, then add it, e.g. "
            f"`ssh-keyscan -p {host.port} {host.ssh_target} >> {known_hosts}`"
        )
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        exc = next(iter(exc.errors.values()))
    if isinstance(exc, TimeoutError):
        return (
            f"no answer within {timeout:g} s: check the address, that the server is up and that "
            f"its firewall allows port {host.port}"
        )
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {host.ssh_target!r}: check the address"
    if isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED:
        return f"connection refused: is sshd running on port {host.port}? check hosts[].port"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"unreachable ({exc.strerror}): check the address and that the server is up"
    if isinstance(exc, RemoteError):
        return f"logged in, but running `true` failed ({exc}): check the server"
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return f"SSH failed ({detail}): is this an SSH server on port {host.port}?"
