"""The CI login (``hosts[].ci_user``): the key that goes to CI and cron is not root.

Its sudoers entry names one root-owned program, ``vpskit-site`` (``sh/site_helper.py``), which
acts on a site only as the site's entry in a root-only registry says (written by ``fab
provision``, which keeps the full-sudo deploy user) and only for the users that entry lists.
This module holds those names, the entry and the commands that call the program (pure).
"""

from __future__ import annotations

import json

from vpskit import render, resident
from vpskit.config import Environment, Host

HELPER = "/usr/local/sbin/vpskit-site"
REGISTRY = "/etc/vpskit/ci"  # <site>.json, 0600 root, in a 0700 directory


def registry_path(env: Environment) -> str:
    return f"{REGISTRY}/{env.site}.json"


def sudoers_rule(user: str) -> str:
    """The CI user's whole sudo: the helper, with whatever arguments it accepts."""
    return f"{user} ALL=(root) NOPASSWD: {HELPER}\n"


def backs_up(env: Environment, host: Host | None) -> bool:
    """Whether a CI login backs the site up on ``host``: the db host of a site with its own
    Postgres (through the server's backup service, installed for it)."""
    return host is not None and bool(host.ci_user) and host == env.db_host and env.own_postgres


def entry(env: Environment, host: Host) -> str:
    """The site's registry entry on ``host``: who may act, and on what."""
    found = {"site": env.site, "users": [host.ci_user]}
    if host.serves_app:
        found["units"] = render.log_units(env)
    if backs_up(env, host):
        found.update(backup_dir=str(env.backup_dir),
                     backup_unit=render.backup_unit_name(env, "service"))
    if resident.serves(env, host):
        found.update(env=env.name, config=resident.config_dir(env))
    return json.dumps(found, indent=1, sort_keys=True) + "\n"


def argv(verb: str, env: Environment, *args: str) -> list[str]:
    """``vpskit-site VERB SITE ARGS...``, run through sudo."""
    return [HELPER, verb, env.site, *args]
