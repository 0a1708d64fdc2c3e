"""A real Debian VPS for tests on this machine (systemd-nspawn, own netns, NAT) and Pebble.

    vps = testvps.up("vps1", index=0, domains=("app.test",))   # root@10.77.0.2, real sshd
    acme = testvps.pebble_up(vps.host_address)                 # acme.directory_url for certbot
    ...
    testvps.pebble_down(); testvps.down("vps1")

Needs root on a Debian host; installs its host packages with apt-get when missing. Test-machine
facts (this machine's CAs, Pebble's CA, apt/pip caches) live here, never in the toolkit.
CLI: ``python -m harness.testvps up|down|status|pebble-up|pebble-down``.
"""

from harness.testvps.keys import generate_key
from harness.testvps.lifecycle import describe, down, is_running, power_cut, status, up
from harness.testvps.pebble import Pebble
from harness.testvps.pebble import down as pebble_down
from harness.testvps.pebble import release as pebble_release
from harness.testvps.pebble import up as pebble_up
from harness.testvps.shell import HarnessError
from harness.testvps.state import Vps

__all__ = [
    "HarnessError",
    "Pebble",
    "Vps",
    "describe",
    "down",
    "generate_key",
    "is_running",
    "pebble_down",
    "pebble_release",
    "pebble_up",
    "power_cut",
    "status",
    "up",
]
