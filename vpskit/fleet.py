"""Run one job per host of an environment concurrently, each with output prefixed by its host,
then a per-host summary; a failure names every host that failed.

With a single host nothing is prefixed and its error propagates unchanged, so one-server
output reads as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

from vpskit.config import Environment, Host
from vpskit.errors import ToolkitError
from vpskit.steps import Reporter

T = TypeVar("T")
POOL = 8  # hosts worked on at once


@dataclass(frozen=True)
class Failure:
    host: Host
    error: ToolkitError


def reporter_for(out: Reporter, host: Host, hosts: Sequence[Host]) -> Reporter:
    """``out`` with a ``[address]`` prefix when several hosts print at once."""
    return replace(out, prefix=f"{out.prefix}[{host.address}] ") if len(hosts) > 1 else out


def each(hosts: Sequence[Host], job: Callable[[Host, Reporter], T], out: Reporter,
         alone: bool | None = None) -> tuple[dict[str, T], list[Failure]]:
    """``job(host, reporter)`` on every host at once (at most :data:`POOL`); the results by
    address, and the failures in host order. ``alone`` (default: one host given) runs the job
    inline with its error unchanged; pass False for one host out of several."""
    if len(hosts) == 1 if alone is None else alone:
        return {hosts[0].address: job(hosts[0], out)}, []
    with ThreadPoolExecutor(max_workers=min(POOL, len(hosts))) as pool:
        futures = [(h, pool.submit(job, h, reporter_for(out, h, hosts))) for h in hosts]
    results, failures = {}, []
    for host, future in futures:
        error = future.exception()
        if error is None:
            results[host.address] = future.result()
        elif isinstance(error, ToolkitError):
            failures.append(Failure(host, error))
        else:
            raise error
    return results, failures


def raise_failures(failures: list[Failure], what: str, total: int) -> None:
    """One line naming each host that failed and why."""
    if not failures:
        return
    named = "; ".join(f"{f.host.address}: {f.error}" for f in failures)
    count = f"{len(failures)} of {total} hosts: " if len(failures) > 1 else ""
    raise type(failures[0].error)(f"{what} failed on {count}{named}")


def each_or_raise(hosts: Sequence[Host], job: Callable[[Host, Reporter], T], out: Reporter,
                  what: str, alone: bool | None = None) -> dict[str, T]:
    """:func:`each`, raising one error naming every host that failed."""
    results, failures = each(hosts, job, out, alone)
    raise_failures(failures, what, len(hosts))
    return results


def select(env: Environment, hosts: str | None = None, role: str | None = None
           ) -> tuple[Host, ...]:
    """The hosts a task acts on: all of ``env``'s, or those named in ``hosts`` (comma separated
    addresses) and/or having ``role``."""
    chosen = env.hosts
    if hosts:
        wanted = [a.strip() for a in hosts.split(",") if a.strip()]
        known = {h.address for h in env.hosts}
        unknown = [a for a in wanted if a not in known]
        if unknown:
            raise ToolkitError(f"--hosts: {', '.join(unknown)} not in environment '{env.name}' "
                               f"(its hosts: {', '.join(sorted(known))})")
        chosen = tuple(h for h in chosen if h.address in wanted)
    if role:
        chosen = tuple(h for h in chosen if role in h.roles)
        if not chosen:
            raise ToolkitError(f"--role: no host of environment '{env.name}' has role '{role}' "
                               f"among those chosen")
    return chosen
