"""Open a :class:`Remote` on a host of an environment, with the environment's secrets masked."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import paramiko

from vpskit import ssh
from vpskit.config import Environment, Host
from vpskit.errors import ConnectError, ToolkitError
from vpskit.remote import Remote


def open_remote(env: Environment, host: Host, user: str | None = None) -> Remote:
    """Connect as ``user`` (default: the deploy user) and mask every secret of ``env``."""
    conn = ssh.connect(host, user=user or host.user, known_hosts=host.known_hosts)
    return Remote(conn, secrets=[s.reveal() for s in env.secrets.values()])


@contextmanager
def connected(env: Environment, host: Host, user: str | None = None) -> Iterator[Remote]:
    """:func:`open_remote` for the ``with`` block: the one way a task holds a connection."""
    remote = open_remote(env, host, user)
    try:
        yield remote
    finally:
        remote.close()


@contextmanager
def opening(hosts: Sequence[Host], open_one: Callable[[Host], Remote]
            ) -> Iterator[Callable[[Host], Remote]]:
    """Start ``open_one(host)`` for every host now, in the background, so the connections are
    made while the caller loads its code; yield the function that waits for a host's (raising
    what its opening raised). Each one opened is closed on the way out."""
    pool = ThreadPoolExecutor(max_workers=len(hosts) or 1, thread_name_prefix="connect")
    futures: dict[str, Future[Remote]] = {h.address: pool.submit(open_one, h) for h in hosts}
    try:
        yield lambda host: futures[host.address].result()
    finally:
        pool.shutdown(cancel_futures=True)
        for future in futures.values():
            if not future.cancelled() and future.exception() is None:
                future.result().close()


def open_for_provision(env: Environment, host: Host) -> Remote:
    """As the deploy user when it exists, else as the bootstrap user (first provision)."""
    try:
        return open_remote(env, host)
    except ConnectError as exc:
        if host.bootstrap_user == host.user or not _auth_failed(exc):
            raise
    try:
        return open_remote(env, host, user=host.bootstrap_user)
    except ConnectError as exc:
        if not _auth_failed(exc):
            raise
        raise ConnectError(f"{exc} (tried users {host.user} and {host.bootstrap_user})") from None


def _auth_failed(exc: ConnectError) -> bool:
    return isinstance(exc.__cause__, paramiko.AuthenticationException)


def public_key(host: Host) -> str | None:
    """The operator's public key for the deploy user: ``<key>.pub``, or derived from the key."""
    if not host.key:
        return None
    pub = Path(host.key + ".pub")
    if pub.exists():
        return pub.read_text().strip()
    try:
        key = paramiko.PKey.from_path(host.key)
    except (OSError, paramiko.SSHException) as exc:
        raise ToolkitError(f"cannot read SSH key {host.key}: {exc}") from None
    return f"{key.get_name()} {key.get_base64()} vpskit"


def verify_login(env: Environment, host: Host) -> None:
    """Prove the deploy user logs in and has passwordless sudo (before SSH is hardened)."""
    with connected(env, host) as remote:
        remote.run(["true"])
