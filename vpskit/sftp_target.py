"""The operator's side of an SFTP off-site target (``offsite.endpoint: sftp://user@host/dir/``),
over the operator's own SSH login there (``offsite.key``, else the agent's; host key checked
against ``offsite.known_hosts``, else ``~/.ssh/known_hosts``): list, read and delete the
site's copies, and authorize the db host's key to write new ones and nothing else.

The db host's key goes into the target user's ``authorized_keys`` as a forced
``sftp-server -p`` that allows creating and writing files only (no read, list, remove,
rename or attribute change; :data:`vpskit.sh.offsite.SFTP_ALLOWED`); its copies are named with
a random part, so it cannot name an older one either.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paramiko

from vpskit import ssh
from vpskit.config import Environment, Host
from vpskit.errors import ToolkitError
from vpskit.remote import Remote
from vpskit.sh.offsite import SFTP_ALLOWED, SFTP_NAME

SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                "/usr/lib/ssh/sftp-server", "/usr/libexec/sftp-server")


class Target:
    """The site's directory on the target, over an open SFTP session."""

    def __init__(self, remote: Remote, directory: str) -> None:
        self.remote = remote
        self.directory = directory
        self.sftp = remote.conn.sftp()

    def _files(self) -> dict[str, list[paramiko.SFTPAttributes]]:
        """``{backup name: [its files, newest first]}`` (a name sent twice has two)."""
        try:
            listing = self.sftp.listdir_attr(self.directory)
        except FileNotFoundError:
            return {}
        found: dict[str, list[paramiko.SFTPAttributes]] = {}
        for attrs in sorted(listing, key=lambda a: a.st_mtime or 0, reverse=True):
            match = SFTP_NAME.fullmatch(attrs.filename)
            if match:
                found.setdefault(match[1], []).append(attrs)
        return found

    def copies(self) -> dict[str, tuple[str, int]]:
        """``{backup name: (file name, size)}`` of the newest file of each."""
        return {name: (files[0].filename, files[0].st_size or 0)
                for name, files in self._files().items()}

    def read(self, name: str) -> bytes:
        files = self._files().get(name)
        if not files:
            raise ToolkitError(f"off-site copy {name}: not in {self.directory}")
        buffer = io.BytesIO()
        self.sftp.getfo(self.directory + files[0].filename, buffer)
        return buffer.getvalue()

    def delete(self, name: str) -> None:
        for attrs in self._files().get(name, []):
            self.sftp.remove(self.directory + attrs.filename)


@contextmanager
def _login(env: Environment) -> Iterator[Remote]:
    """The operator's own SSH login to the target, for the block."""
    remote = Remote(ssh.connect(target_host(env)))
    try:
        yield remote
    finally:
        remote.close()


@contextmanager
def opened(env: Environment) -> Iterator[Target]:
    """The operator's SFTP session to the site's directory on the target."""
    with _login(env) as remote:
        yield Target(remote, env.offsite.sftp_target[3] + env.offsite_prefix)


def target_host(env: Environment) -> Host:
    user, host, port, _ = env.offsite.sftp_target
    return Host(host, user=user, port=port, key=env.offsite.key or None,
                known_hosts=env.offsite.known_hosts or None, roles=())


def authorize(env: Environment, public_key: str) -> list[str]:
    """Put the db host's ``public_key`` in the target user's ``authorized_keys``, restricted to
    writing new files, unless it is there; what changed."""
    user, host, _, _ = env.offsite.sftp_target
    with _login(env) as remote:
        found = remote.run(["sh", "-c", FIND_SFTP_SERVER, "find", *SFTP_SERVERS], sudo=False)
        server = found.stdout.strip()
        if not server:
            raise ToolkitError(f"offsite: {user}@{host} has no sftp-server in "
                               f"{', '.join(SFTP_SERVERS)}; install openssh-sftp-server there")
        line = f'restrict,command="{server} -p {SFTP_ALLOWED}" {public_key.strip()}'
        keys = remote.run(["cat", ".ssh/authorized_keys"], sudo=False, check=False).stdout
        if line in keys.splitlines():
            return []
        remote.run(["sh", "-c", "umask 077 && mkdir -p .ssh && cat >> .ssh/authorized_keys"],
                   stdin=line + "\n", sudo=False)
    return [f"{user}@{host}: the db host's key may write new copies (only)"]


FIND_SFTP_SERVER = 'for p in "$@"; do if [ -x "$p" ]; then echo "$p"; exit; fi; done'


def host_keys(env: Environment) -> str:
    """The target's host keys as the operator's known_hosts has them, in known_hosts form for
    the db host (pure but for reading that file)."""
    user, host, port, _ = env.offsite.sftp_target
    path = Path(env.offsite.known_hosts or Path.home() / ".ssh" / "known_hosts")
    name = host if port == 22 else f"[{host}]:{port}"
    keys = paramiko.HostKeys(str(path)) if path.is_file() else paramiko.HostKeys()
    found = keys.lookup(name) or {}
    if not found:
        raise ToolkitError(f"offsite: the host key of {name} is not in {path}: check its "
                           f"fingerprint, then `ssh-keyscan -p {port} {host} >> {path}`")
    return "".join(f"{name} {kind} {key.get_base64()}\n" for kind, key in sorted(found.items()))
