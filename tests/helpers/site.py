"""A test site: the example Django app in its own git repo, an inventory for the test VPS,
and ways to drive it the way an operator does (the real ``fab`` command line)."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from vpskit import inventory, session
from vpskit.config import Environment
from vpskit.remote import Remote

ROOT = Path(__file__).resolve().parents[2]
FAB = Path(sys.executable).parent / "fab"
SECRET_KEY = "test-secret-key-that-must-never-be-printed-7f3a9c"

INVENTORY = """\
app:
  name: shop
  repo: app
  entry: shop.wsgi:application
  django_settings: shop.settings
  workers: 2
  graceful_timeout: 10
health:
  retries: 15
tls:
  email: ops@{domain}
  acme_url: {acme}
nginx:
  rate_limit: 5000r/s               # the load tests come from one address
  rate_burst: 5000
releases_keep: 3
secrets: [SECRET_KEY]
environments:
  production:
    hosts:
      - address: {address}
        key: {key}
        known_hosts: {known_hosts}
    domains: [{domains}]
"""


@dataclass
class Site:
    dir: Path
    domains: tuple[str, ...]
    ca_file: Path  # Pebble's root: verifies the certificates it issued
    env_name: str = "production"
    outputs: list[str] = field(default_factory=list)  # every fab run's stdout+stderr

    @classmethod
    def create(cls, base: Path, vps, pebble) -> Site:
        app = base / "app"
        shutil.copytree(ROOT / "examples" / "django", app,
                        ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
        git(app, "init", "-q", "-b", "main")
        git(app, "add", "-A")
        git(app, "commit", "-qm", "example app 1.0.0")
        (base / "inventory.yml").write_text(INVENTORY.format(
            domain=vps.domains[0], acme=pebble.directory_url, address=vps.address,
            key=vps.key_path, known_hosts=vps.known_hosts_path, domains=", ".join(vps.domains)))
        env_file = base / ".env.production"
        env_file.write_text(f"SECRET_KEY={SECRET_KEY}\n")
        env_file.chmod(0o600)
        ca_file = base / "pebble-root.pem"
        ctx = ssl.create_default_context(cafile=pebble.listener_ca_path)
        with urllib.request.urlopen(pebble.roots_url, context=ctx, timeout=10) as response:
            ca_file.write_bytes(response.read())
        return cls(base, tuple(vps.domains), ca_file)

    @property
    def domain(self) -> str:
        return self.domains[0]

    @property
    def app(self) -> Path:
        return self.dir / "app"

    def fab(self, *args: str, check: bool = True, timeout: float = 900, env: str | None = None,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run the real ``fab`` CLI in the site directory (``--env`` added after the task)."""
        argv = [str(FAB), "-r", str(ROOT), args[0], "--env", env or self.env_name, *args[1:]]
        result = subprocess.run(argv, cwd=self.dir, capture_output=True, text=True,
                                timeout=timeout, env={**os.environ, **(extra_env or {})},
                                stdin=subprocess.DEVNULL)
        self.outputs.append(result.stdout + result.stderr)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv[2:])} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def env(self) -> Environment:
        return inventory.load(self.dir / "inventory.yml", self.env_name,
                              environ={"SECRET_KEY": SECRET_KEY})

    def remote(self) -> Remote:
        """A runner on the VPS as the deploy user (root login is off after provision)."""
        env = self.env()
        return session.open_remote(env, env.hosts[0])

    def sh(self, script: str, check: bool = True) -> str:
        """Run a root shell script on the VPS and return its stdout."""
        remote = self.remote()
        try:
            return remote.script(script, check=check).stdout
        finally:
            remote.conn.close()

    def service_pids(self) -> dict[str, str]:
        out = self.sh("for s in nginx redis-server postgresql@15-main; do "
                      "echo $s $(systemctl show -p MainPID --value $s); done")
        return dict(line.split() for line in out.splitlines())

    def commit(self, message: str, files: dict[str, str]) -> str:
        """Change the app and commit; return the new sha."""
        for name, text in files.items():
            path = self.app / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git(self.app, "add", "-A")
        git(self.app, "commit", "-qm", message)
        return git(self.app, "rev-parse", "HEAD").strip()

    def get(self, path: str = "/", scheme: str = "https", timeout: float = 10
            ) -> tuple[int, str, dict[str, str]]:
        """GET through the domain, verifying TLS against Pebble's root; (status, body, headers)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                             urllib.request.ProxyHandler({}), NoRedirect())
        try:
            with opener.open(f"{scheme}://{self.domain}{path}", timeout=timeout) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace"), dict(exc.headers)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout
