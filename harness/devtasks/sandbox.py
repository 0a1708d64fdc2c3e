"""A working directory that drives a test VPS like an operator would: an example app (Django by
default, or Flask, or Channels) in its own git repository, an inventory pointing at the VPS and
Pebble, the secrets file, and the ``fabfile.py`` that ``vpskit init`` writes.

Used by the demo (``scripts/demo``) and by the integration tests.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import ssl
import subprocess
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from harness.testvps import Pebble, Vps
from vpskit.init import scaffold

ROOT = Path(__file__).resolve().parents[2]

# The app section and secrets of each example under examples/; the rest of the inventory is common.
APPS = {
    "django": ("""\
app:
  name: shop
  repo: app
  entry: shop.wsgi:application
  django_settings: shop.settings
  workers: 2
  graceful_timeout: 10
processes:
  worker:
    command: celery -A shop worker --concurrency 2 --loglevel INFO
    stop_timeout: 60
""", ("SECRET_KEY",)),
    "flask": ("""\
app:
  name: depot
  repo: app
  kind: flask
  entry: app:app
  workers: 2
  worker_class: gevent
  timeout: 300
  graceful_timeout: 30
  release_commands: ["python migrate.py"]
optional_secrets: [SENTRY_DSN]
""", ("SECRET_KEY", "FERNET_KEY")),
    "channels": ("""\
app:
  name: chat
  repo: app
  kind: asgi
  server: daphne
  entry: chat.asgi:application
  django_settings: chat.settings
  graceful_timeout: 10
""", ("SECRET_KEY",)),
}
NEW_SECRET = {
    "SECRET_KEY": lambda: secrets.token_urlsafe(40),
    "FERNET_KEY": lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
}
INVENTORY = """\
# Written by vpskit's sandbox for the local test VPS {name}.
{app}secrets: [{secrets}]
health:
  retries: 15
tls:
  email: ops@{domain}
  acme_url: {acme}                 # Pebble, the ACME test server on this machine
nginx:
  rate_limit: 5000r/s               # load tests come from one address
  rate_burst: 5000
releases_keep: 3
backups:                            # no nightly backup taking the lock from a test's deploy
  timer: off
environments:
  production:
    hosts:
{hosts}    domains: [{domains}]
"""
HOST = """\
      - address: {address}
        key: {key}
        known_hosts: {known_hosts}
"""
STAGING = """\
  staging:                          # a second site on the same VPS
    hosts:
      - address: {address}
        key: {key}
        known_hosts: {known_hosts}
    domains: [{domain}]
"""


def create(base: Path, vps: Vps, pebble: Pebble, secret_key: str | None = None,
           staging_domain: str | None = None, example: str = "django",
           domains: Sequence[str] | None = None,
           roles: Sequence[tuple[Vps, Sequence[str]]] = ()) -> Path:
    """Fill ``base`` (app repo, inventory.yml, fabfile.py, .env.<env>, pebble-root.pem); return it.

    ``example`` names the app under examples/. Production serves ``domains`` (default: the
    VPS's) from ``vps``, or from several VPSes given as ``roles`` ((vps, its roles) pairs;
    plain HTTP unless one is an lb host); with ``staging_domain`` a staging environment on
    ``vps`` serves that one.
    """
    app_text, secret_names = APPS[example]
    app = base / "app"
    if not app.exists():
        shutil.copytree(ROOT / "examples" / example, app,
                        ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
        git(app, "init", "-q", "-b", "main")
        git(app, "add", "-A")
        git(app, "commit", "-qm", "example app 1.0.0")
    host = _host(vps)
    production = list(domains or [d for d in vps.domains if d != staging_domain])
    hosts = "".join(HOST.format(**_host(v)) + f"        roles: [{', '.join(r)}]\n"
                    for v, r in roles) or HOST.format(**host)
    text = INVENTORY.format(name=vps.name, app=app_text, secrets=", ".join(secret_names),
                            domain=production[0], acme=pebble.directory_url,
                            domains=", ".join(production), hosts=hosts)
    if roles and not any("lb" in r for _, r in roles):
        text = text.replace("tls:\n", "tls:\n  enabled: false\n", 1)
    if staging_domain:
        text += STAGING.format(domain=staging_domain, **host)
    (base / "inventory.yml").write_text(text)
    scaffold.write_fabfile(base)
    for env_name in ("production", "staging"):
        env_file = base / f".env.{env_name}"
        if not env_file.exists():
            values = {name: NEW_SECRET[name]() for name in secret_names}
            values["SECRET_KEY"] = secret_key or values["SECRET_KEY"]
            env_file.touch(mode=0o600)
            env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    ctx = ssl.create_default_context(cafile=pebble.listener_ca_path)
    with urllib.request.urlopen(pebble.roots_url, context=ctx, timeout=10) as response:
        (base / "pebble-root.pem").write_bytes(response.read())
    return base


def _host(vps: Vps) -> dict[str, str]:
    return {"address": vps.address, "key": vps.key_path, "known_hosts": vps.known_hosts_path}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=vpskit", "-c", "user.email=vpskit@localhost",
                           *args], cwd=repo, check=True, capture_output=True, text=True).stdout
