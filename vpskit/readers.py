"""How a command's result is read: pure functions from the host's name, the command's result
and data arguments to what it made (a :class:`~vpskit.plan.Plan` of change lines and facts for
later steps), or one error. A plan's :class:`~vpskit.plan.Run` names its reader and the
reader's arguments (``read``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from vpskit import plan
from vpskit.backup_script import Artifact
from vpskit.deploy.pipfail import summarize_pip_failure
from vpskit.errors import RemoteError, ToolkitError
from vpskit.plan import Plan
from vpskit.remote import Result

NGINX_REFUSED = (3, 4)  # sh/switch-nginx.sh: `nginx -t` failed, or the reload did
NO_SPACE = 28  # exit code of a server script that found too little free space (ENOSPC)
PIP_FAILED = 3  # sh/venv.sh's exit code when pip failed; its output is then pip's log


class FailedAs(Exception):
    """Raised by a reader: the command failed, and says so as ``argv`` would (the applier
    makes the one-line error of :meth:`vpskit.remote.Remote.error`)."""

    def __init__(self, argv: Sequence[str]) -> None:
        super().__init__(argv)
        self.argv = list(argv)


def no_space(host: str, what: str, path: str, need: int, free: int) -> str:
    """The one line for too little free space, in MB."""
    return (f"{host}: not enough free space for {what} in {path}: it needs about "
            f"{need / 1e6:.1f} MB, {free / 1e6:.1f} MB are free; free some space (old backups, "
            f"releases) or grow the disk, then try again")


def room(host: str, result: Result, what: str, path: str) -> Plan:
    """A script that found too little room for ``what`` in ``path`` (exit 28 with
    ``NOSPACE <need> <free>``, in bytes) is the one line :func:`no_space` says."""
    if result.exited == NO_SPACE and result.stdout.startswith("NOSPACE"):
        need, free = (int(n) for n in result.stdout.split()[1:3])
        raise ToolkitError(no_space(host, what, path, need, free))
    return Plan()


def archived(host: str, result: Result, path: str, command: tuple[str, ...]) -> Plan:
    """``sh/archive.sh`` made ``path`` (its last line: size and sha256): the change line,
    and the :class:`Artifact` as the fact named ``path``; its failure as ``command`` (the
    dump or the tar) failing, or too little room."""
    room(host, result, "a dump", path.rsplit("/", 1)[0])
    if not result.ok:
        raise FailedAs(command)
    size, sha256 = result.stdout.split()[-2:]
    made = Artifact(path, int(size), sha256)
    return Plan(changes=(str(made),)) + plan.outputs(**{path: made})


def made(host: str, result: Result, directory: str, unit: str) -> Plan:
    """``vpskit-site backup`` ran the site's backup service (``unit``): each file it made in
    ``directory`` ("made NAME SIZE SHA256") as a change line and an :class:`Artifact` fact
    named by its path; its failure as the service's last line."""
    if not result.ok:
        said = [line for line in result.stderr.splitlines() if line.strip()]
        raise ToolkitError(f"{host}: {said[-1] if said else unit + ' failed'} "
                           f"(journalctl -u {unit})")
    found = [Artifact(f"{directory}/{name}", int(size), sha256) for word, name, size, sha256
             in (line.split() for line in result.stdout.splitlines()) if word == "made"]
    if not found:
        raise ToolkitError(f"{host}: {unit} made no new backup (journalctl -u {unit})")
    return Plan(changes=tuple(map(str, found))) + plan.outputs(**{a.path: a for a in found})


def failed_as(host: str, result: Result, *argv: str) -> Plan:
    """A failure says so as ``argv`` would (a short name for a long server command)."""
    if not result.ok:
        raise FailedAs(argv)
    return Plan()


def nginx_switch(host: str, result: Result, what: str) -> Plan:
    """A reload of Nginx (``sh/switch-nginx.sh``) that refused ``what`` is an error."""
    if result.exited in NGINX_REFUSED:
        raise RemoteError(f"{host}: nginx refused {what}")
    return Plan()


def offsite(host: str, result: Result) -> Plan:
    """The server's off-site copy (``sh/offsite.py``) says what it sent, or why not."""
    if not result.ok:
        raise ToolkitError(f"{host}: {result.stderr.strip() or 'off-site copy failed'}")
    return Plan(changes=tuple(line.removeprefix("off-site ")
                              for line in result.stdout.splitlines()))


def pruned(host: str, result: Result, where: str) -> Plan:
    """``sh/prune_backups.py`` prints what it removed from ``where``."""
    failed_as(host, result, "prune", where)
    gone = result.stdout.split()
    return Plan(changes=(f"server: removed {', '.join(gone)}",) if gone else ())


def printed(host: str, result: Result, fact: str, *argv: str) -> Plan:
    """A command's output is the fact ``fact``; its failure says so as ``argv`` would."""
    failed_as(host, result, *argv)
    return plan.outputs(**{fact: result.stdout})


def stopped(host: str, result: Result) -> Plan:
    """``sh/stop-others.sh`` prints the units it stops: one line naming them, if any."""
    units = [word.removesuffix(".service") for word in result.stdout.split()]
    return Plan(changes=(f"stopping {', '.join(units)}",) if units else ())


def venv(host: str, result: Result, key: str, requirements: str, log: str, venvs: str,
         python: tuple[int, int] | None) -> Plan:
    """``sh/venv.sh``: a pip failure is one line (:func:`summarize_pip_failure` of pip's
    output, for the server's ``python``), too little room another; else whether venv ``key``
    was built or reused."""
    if result.exited == PIP_FAILED:
        raise RemoteError(f"{host}: pip install -r {requirements} failed: "
                          f"{summarize_pip_failure(result.stdout, python)} (full output: {log})")
    room(host, result, "a virtualenv", venvs)
    return Plan(changes=(f"{'built' if 'built' in result.stdout else 'reused'} venvs/{key}",))


READERS: dict[str, Callable[..., Plan]] = {
    f.__name__: f for f in (room, archived, made, failed_as, nginx_switch, offsite, pruned,
                            printed, stopped, venv)}
