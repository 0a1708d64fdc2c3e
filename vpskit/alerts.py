"""Alerts: what each host's watchdog (``vpskit/sh/watchdog.py``, run by a systemd timer that
provision installs while ``alerts`` names a receiver) checks and whom it tells; and
``fab alerts --test``.

Each problem is checked by one host, so it is told once per environment: the site's health
and certificate by each public host (the lb, or the web hosts), the newest backup and off-site
copy (by the stamp its sender leaves) by the db host, free disk and the site's failed units by
every host, each of its own."""

from __future__ import annotations

import json

from vpskit import render
from vpskit.config import Environment, Host
from vpskit.errors import ToolkitError
from vpskit.files import FileSpec
from vpskit.provision import cache
from vpskit.steps import Reporter

DISKS = ("/", "/srv")  # and the site's backup directory, which may be a filesystem of its own


def server_config(env: Environment, host: Host) -> dict:
    """The watchdog's configuration on ``host`` (pure; it holds the receivers' URLs)."""
    alerts = env.alerts
    public = host in env.public_hosts
    units = [f"{env.site}-*"] + ([cache.unit(env.site)] if host == env.db_host and env.own_redis
                                 else [])
    return {
        "site": env.site, "host": host.address,
        "webhook": _secret(env, alerts.webhook), "heartbeat": _secret(env, alerts.heartbeat),
        "email": alerts.email,
        "health": {"domain": env.primary_domain, "path": env.health.path,
                   "status": env.health.status, "timeout": env.health.timeout,
                   "tls": render.cert_path(env) if env.tls.enabled else "",
                   "url": f"{'https' if env.tls.enabled else 'http'}://{env.primary_domain}"
                          f"{env.health.path}"} if public else None,
        "cert": render.cert_path(env) if public and env.tls.enabled else "",
        "cert_days": alerts.cert_days,
        "backups": {"dir": str(env.backup_dir), "prefix": f"{env.site}-",
                    "hours": alerts.backup_hours} if host == env.db_host and env.own_postgres
        else None,
        "offsite": {"stamp": render.offsite_stamp(env), "config": render.offsite_config(env),
                    "hours": alerts.backup_hours}
        if host == env.db_host and env.own_postgres and env.offsite.enabled else None,
        "disks": [*DISKS, str(env.backup_dir)], "disk_free_percent": alerts.disk_free_percent,
        "units": units,
    }


def _secret(env: Environment, secret: str) -> str:
    return env.secrets[secret].reveal() if secret in env.secrets else ""


def specs(env: Environment, host: Host, program: str) -> list[FileSpec]:
    """The watchdog's files on ``host`` while alerts are on, else [] (pure)."""
    if not env.alerts.enabled:
        return []
    config = json.dumps(server_config(env, host), indent=1, sort_keys=True) + "\n"
    return [FileSpec(render.WATCHDOG_PROGRAM, program),
            FileSpec(render.watchdog_config(env), config, mode=0o600, secret=True),
            *(FileSpec(path, text) for path, text in render.watchdog_units(env).items())]


def describe(env: Environment) -> list[str]:
    """What the watchdog checks and whom it tells, in lines (pure; no URL shown)."""
    a = env.alerts
    if not a.enabled:
        return [f"alerts off for {env.name}: set alerts.webhook, alerts.email and/or "
                f"alerts.heartbeat"]
    mail = [f"email to {a.email} via the host's MTA{f' and {a.smtp}' if a.smtp else ''}"]
    told = ", ".join([f"{what} (secret {getattr(a, what)})" for what in ("webhook", "heartbeat")
                      if getattr(a, what)] + (mail if a.email else []))
    return [f"alerts for {env.site}: {told}; checks every {a.every} min",
            f"  health through Nginx and certificates (within {a.cert_days} days) on "
            f"{', '.join(h.address for h in env.public_hosts)}",
            f"  newest backup (within {a.backup_hours} h) on "
            f"{env.db_host.address if env.db_host else 'no host (managed database)'}",
            f"  free disk (under {a.disk_free_percent}%) and failed units on every host"]


def send_test(env: Environment, out: Reporter) -> None:
    """One test notice to the webhook and a heartbeat, from the first public host's
    watchdog as installed, so it proves the path a real notice takes."""
    if not env.alerts.enabled:
        raise ToolkitError(f"alerts are off for {env.name}: set alerts.webhook, alerts.email "
                           f"and/or alerts.heartbeat in inventory.yml, then fab provision")
    from vpskit import session  # here: the watchdog's files are planned without SSH
    host = env.public_hosts[0]
    with session.connected(env, host) as remote:
        result = remote.run(["python3", render.WATCHDOG_PROGRAM, render.watchdog_config(env),
                             "--test"], check=False, timeout=60)
    if not result.ok:
        raise ToolkitError(f"test notice from {host.address} failed: "
                           f"{(result.stderr.strip() or 'no watchdog; run fab provision')}")
    sent = [what for what in ("webhook", "email", "heartbeat") if getattr(env.alerts, what)]
    out.line(f"test notice sent from {host.address} ({' and '.join(sent)})")
