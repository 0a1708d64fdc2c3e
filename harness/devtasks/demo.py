"""The README's first command: boot a local test VPS, provision it, deploy the example app,
print its HTTPS URL. Re-running it reuses the VPS and redeploys (idempotent)."""

from __future__ import annotations

import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

from invoke import task

from harness import testvps
from harness.devtasks import sandbox
from vpskit.cli import exits
from vpskit.errors import ToolkitError

WORKDIR = Path("/var/lib/vpskit-demo")
VPSKIT = Path(sys.executable).parent / "vpskit"
NAME, INDEX, DOMAINS = "demo", 0, ("shop.test", "www.shop.test")


def run() -> str:
    """Run the whole demo; return the app's URL."""
    vps = next((v for v in testvps.status() if v.name == NAME and testvps.is_running(v)), None)
    if vps is None:
        print(f"booting test VPS {NAME} (Debian 12, systemd-nspawn) ...", flush=True)
        vps = testvps.up(NAME, INDEX, domains=DOMAINS)
    print(testvps.describe(vps), flush=True)
    pebble = testvps.pebble_up(vps.host_address)
    WORKDIR.mkdir(parents=True, exist_ok=True)
    sandbox.create(WORKDIR, vps, pebble)
    for task_name in ("provision", "deploy"):
        print(f"\n$ fab {task_name} --env production   (in {WORKDIR})", flush=True)
        fab = Path(sys.executable).parent / "fab"
        code = subprocess.call([str(fab), task_name, "--env",
                                "production"], cwd=WORKDIR)
        if code:
            raise ToolkitError(f"fab {task_name} failed (exit {code}); see its output above")
    url = f"https://{DOMAINS[0]}/"
    ca = WORKDIR / "pebble-root.pem"
    context = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        body = response.read().decode().strip()
    print(f"\nThe example app is live: {url}\n  {body}\n"
          f"  try: curl --cacert {ca} {url}health/\n"
          f"  the operator's view: cd {WORKDIR} && {VPSKIT} status --env production\n"
          f"  tear down: {sys.executable} -m harness.testvps down --name {NAME} && "
          f"{sys.executable} -m harness.testvps pebble-down")
    return url


@task
@exits
def demo(c):
    """Boot a test VPS, provision it, deploy the example app and print its HTTPS URL."""
    run()


if __name__ == "__main__":
    try:
        run()
    except ToolkitError as exc:
        sys.exit(f"error: {exc}")
