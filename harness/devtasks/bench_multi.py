"""Many hosts for ``inv bench``: fresh provision and first deploy of the example on three test
VPSes (``lb+web+worker``, ``web``, ``db``; TLS from Pebble on the lb) against the same on one;
parallelism should keep three hosts under 1.5x of one."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from harness import testvps
from harness.devtasks import sandbox

NAMES, FIRST_INDEX, DOMAIN = ("bench-m1", "bench-m2", "bench-m3"), 21, "multi.bench.test"
ROLES = (("lb", "web", "worker"), ("web",), ("db",))


def run(fab: Callable[..., tuple[float, str]], report: Callable[..., Any],
        one_host: dict[str, float]) -> list[Any]:
    """Measure on three fresh VPSes; ``one_host`` holds the single-host ``provision`` and
    ``deploy`` seconds of the main bench; ``report`` is ``bench.row``."""
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="vpskit-bench-") as tmp:
        machines = []
        for i, name in enumerate(NAMES):
            testvps.down(name)
            machines.append(testvps.up(name, FIRST_INDEX + i, domains=(DOMAIN,) if i == 0 else ()))
            stack.callback(testvps.down, name)
        pebble = testvps.pebble_up(machines[0].host_address)
        stack.callback(testvps.pebble_release, pebble)
        workdir = sandbox.create(Path(tmp), machines[0], pebble, domains=[DOMAIN],
                                 roles=list(zip(machines, ROLES, strict=True)))
        provision, _ = fab(workdir, "provision")
        deploy, _ = fab(workdir, "deploy")
    rows = []
    for what, seconds in (("provision", provision), ("deploy", deploy)):
        rows.append(report(f"3 hosts (lb+web+worker, web, db): fresh {what}", seconds, " s", None))
        rows.append(report(f"3 hosts / 1 host, fresh {what}", seconds / one_host[what], "",
                           1.5, "{:.2f}"))
    return rows
