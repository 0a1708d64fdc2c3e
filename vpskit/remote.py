"""Run commands on a server over an open Fabric ``Connection``, one SSH channel per call.

Commands are argument lists joined once with ``shlex.join``; anything sensitive (file contents,
passwords, scripts) travels on stdin, never in argv. Non-root logins get ``sudo -n`` so a sudo
that wants a password fails at once with a clear error instead of hanging. Every call counts as
one round trip (see :attr:`Remote.round_trips`), which the benchmark reports.
"""

from __future__ import annotations

import select
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import paramiko
from fabric import Connection

from vpskit.errors import RemoteError
from vpskit.secret import mask

TAIL_LINES = 8
TIMED_OUT = 124  # coreutils ``timeout``: the command ran over its time and was stopped
CLIENT_GRACE = 20  # seconds the client waits past a command's timeout for the server's answer


@dataclass(frozen=True)
class Result:
    stdout: str
    stderr: str
    exited: int

    @property
    def ok(self) -> bool:
        return self.exited == 0


def describe(argv: Sequence[str]) -> str:
    """A command as one short line: ``bash -c SCRIPT NAME ARGS`` shows as ``NAME ARGS``, and a
    server-side unit's (``server-op UNIT OPTIONS -- COMMAND``) as ``COMMAND``."""
    words = list(argv[3:]) if len(argv) > 3 and list(argv[:2]) == ["bash", "-c"] else list(argv)
    if words[:1] == ["server-op"] and "--" in words:
        words = words[words.index("--") + 1:]
    return " ".join(shlex.join(words)[:200].split())


class Remote:
    """Command runner bound to one connection; masks ``secrets`` in every error it raises."""

    def __init__(self, conn: Connection, secrets: Sequence[str] = ()) -> None:
        self.conn = conn
        self.secrets: list[str] = list(secrets)
        self.round_trips = 0

    @property
    def host(self) -> str:
        return self.conn.host

    @property
    def is_root(self) -> bool:
        return self.conn.user == "root"

    def channel(self, line: str) -> paramiko.Channel:
        """A new SSH channel running ``line`` (from :meth:`command`): the one way this toolkit
        opens a channel; counts a round trip and reopens a dropped connection first."""
        self.round_trips += 1
        if not self.conn.is_connected:
            self.conn.open()
        channel = self.conn.client.get_transport().open_session()
        try:
            channel.exec_command(line)
        except BaseException:
            channel.close()
            raise
        return channel

    def close(self) -> None:
        self.conn.close()

    def add_secret(self, value: str) -> None:
        """Mask ``value`` in every later error message."""
        if value and value not in self.secrets:
            self.secrets.append(value)

    def masked(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``, as in every error raised here."""
        return mask(text, self.secrets)

    def command(self, argv: Sequence[str], sudo: bool = True, user: str | None = None,
                timeout: float | None = None) -> str:
        """The shell line for ``argv``: as root (``sudo -n``) or as ``user`` when given; with
        ``timeout``, the server stops it then (``timeout``: SIGTERM, SIGKILL 10 s later)."""
        prefix: list[str] = []
        if user:
            prefix = ["sudo", "-n", "-H", "-u", user, "--"]
        elif sudo and not self.is_root:
            prefix = ["sudo", "-n", "--"]
        if timeout:
            prefix += ["timeout", "--kill-after=10", f"{timeout:g}"]  # 0 would mean no limit
        return shlex.join([*prefix, *argv])

    def run(self, argv: Sequence[str], *, stdin: bytes | str | None = None, sudo: bool = True,
            user: str | None = None, check: bool = True, timeout: float | None = None,
            on_stdout: Callable[[str], None] | None = None) -> Result:
        """Run ``argv`` on the server; raise :class:`RemoteError` on non-zero exit if ``check``,
        and always when it ran over ``timeout`` seconds: the server stopped it then, so nothing
        goes on behind the error (the client gives up too, a little later, if the server does
        not answer)."""
        line = self.command(argv, sudo=sudo, user=user, timeout=timeout)
        result = self._exec(line, stdin, timeout and timeout + CLIENT_GRACE, on_stdout)
        if timeout and result.exited == TIMED_OUT:
            raise RemoteError(self.masked(f"{self.host}: `{describe(argv)}` timed out after "
                                          f"{timeout:g}s and was stopped"))
        if check and not result.ok:
            raise self.error(argv, result)
        return result

    def script(self, text: str, *, args: Sequence[str] = (), sudo: bool = True,
               user: str | None = None, check: bool = True, timeout: float | None = None
               ) -> Result:
        """Run a bash script sent on stdin (``bash -s``), so its text never shows in ``ps``."""
        return self.run(["bash", "-s", "--", *args], stdin=text, sudo=sudo, user=user,
                        check=check, timeout=timeout)

    def error(self, argv: Sequence[str], result: Result) -> RemoteError:
        """A one-line error naming the command, exit code and the tail of its output."""
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-TAIL_LINES:]
        detail = " | ".join(t.strip() for t in tail if t.strip())
        if "sudo: a password is required" in result.stderr:
            detail = (f"user '{self.conn.user}' needs a password for sudo; give it passwordless "
                      f"sudo or log in as root")
        message = f"{self.host}: `{describe(argv)}` exited {result.exited}: {detail}"
        return RemoteError(self.masked(message))

    def _exec(self, line: str, stdin: bytes | str | None, timeout: float | None,
              on_stdout: Callable[[str], None] | None) -> Result:
        channel = self.channel(line)
        try:
            if stdin is not None:
                channel.sendall(stdin.encode() if isinstance(stdin, str) else stdin)
            channel.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + timeout if timeout else None
            pending = ""
            while True:
                if deadline and time.monotonic() > deadline:
                    raise RemoteError(mask(f"{self.host}: `{line[:200]}` timed out after "
                                           f"{timeout:.0f}s", self.secrets))
                select.select([channel], [], [], 0.2)
                got = False
                while channel.recv_ready():
                    chunk = channel.recv(65536)
                    out += chunk
                    got = True
                    if on_stdout:
                        pending += chunk.decode(errors="replace")
                        *lines, pending = pending.split("\n")
                        for text in lines:
                            on_stdout(text)
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                    got = True
                if not got and channel.exit_status_ready() and not channel.recv_ready() \
                        and not channel.recv_stderr_ready():
                    break
            if on_stdout and pending:
                on_stdout(pending)
            return Result(out.decode(errors="replace"), err.decode(errors="replace"),
                          channel.recv_exit_status())
        finally:
            channel.close()
