"""``python -m harness.testvps up|down|status|pebble-up|pebble-down``: one line per result."""

from __future__ import annotations

import argparse
import sys
import time

from harness import testvps
from harness.testvps.state import SUITES
from vpskit.errors import ToolkitError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.testvps", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status", "pebble-up", "pebble-down"))
    parser.add_argument("--name", default="vps1")
    parser.add_argument("--index", type=int, default=0, help="the VPS gets 10.77.<index>.2")
    parser.add_argument("--suite", default="bookworm", choices=SUITES)
    parser.add_argument("--domain", action="append", default=[], help="repeatable")
    parser.add_argument("--host-address", default="10.77.0.1", help="pebble-up: host seen by VPS")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        if args.command == "up":
            vps = testvps.up(args.name, args.index, args.suite, tuple(args.domain))
            print(f"{testvps.describe(vps)} [{time.monotonic() - started:.1f} s]")
        elif args.command == "down":
            testvps.down(args.name)
            print(f"{args.name} down [{time.monotonic() - started:.1f} s]")
        elif args.command == "status":
            for vps in testvps.status():
                print(testvps.describe(vps))
        elif args.command == "pebble-up":
            pebble = testvps.pebble_up(args.host_address)
            print(f"pebble up (pid {pebble.pid}): {pebble.directory_url} "
                  f"listener CA {pebble.listener_ca_path}")
        else:
            testvps.pebble_down()
            print("pebble down")
    except ToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
