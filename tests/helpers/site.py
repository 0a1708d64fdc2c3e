"""A test site: the example Django app in its own git repo, an inventory for the test VPS,
and ways to drive it the way an operator does (the real ``fab`` command line)."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.devtasks import sandbox
from harness.devtasks.sandbox import git
from vpskit import inventory, session
from vpskit.config import Environment
from vpskit.provision import cache
from vpskit.remote import Remote

FAB = Path(sys.executable).parent / "fab"
SECRET_KEY = "test-secret-key-that-must-never-be-printed-7f3a9c"


def step_states(output: str) -> dict[str, str]:
    """``{step: changed, unchanged, would change or failed}`` from a task's step lines."""
    return dict(re.findall(r"^  (\S+)\s+(changed|unchanged|would change|failed)\b", output,
                           re.M))


def step_changes(output: str) -> dict[str, str]:
    """``{step: its change details}`` of the steps that changed or would change."""
    return {name.strip(): detail for name, detail in re.findall(
        r"^  (\S.{11}) (?:changed|would change)\s+[\d.]+s  (.*)$", output, re.M)}


@dataclass
class Site:
    dir: Path
    domains: tuple[str, ...]
    ca_file: Path  # Pebble's root: verifies the certificates it issued
    env_name: str = "production"
    outputs: list[str] = field(default_factory=list)  # every fab run's stdout+stderr
    fab_command: Path = FAB  # another installation's fab (see tests/helpers/installed.py)

    @classmethod
    def create(cls, base: Path, vps, pebble, staging_domain: str | None = None) -> Site:
        sandbox.create(base, vps, pebble, secret_key=SECRET_KEY, staging_domain=staging_domain)
        domains = tuple(d for d in vps.domains if d != staging_domain)
        return cls(base, domains, base / "pebble-root.pem")

    @property
    def domain(self) -> str:
        return self.domains[0]

    @property
    def app(self) -> Path:
        return self.dir / "app"

    def fab(self, *args: str, check: bool = True, timeout: float = 900, env: str | None = None,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run the real ``fab`` CLI in the site directory (``--env`` added after the task)."""
        argv = self.fab_argv(args, env)
        result = subprocess.run(argv, cwd=self.dir, capture_output=True, text=True,
                                timeout=timeout, env={**os.environ, **(extra_env or {})},
                                stdin=subprocess.DEVNULL)
        self.outputs.append(result.stdout + result.stderr)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv[1:])} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def fab_argv(self, args: Sequence[str], env: str | None = None) -> list[str]:
        """``fab TASK --env ENV ARGS...`` for ``args`` = ``(TASK, *ARGS)``."""
        return [str(self.fab_command), args[0], "--env", env or self.env_name, *args[1:]]

    @contextmanager
    def fab_until(self, *args: str, seen: Callable[[str], bool]
                  ) -> Iterator[tuple[subprocess.Popen, list[str]]]:
        """The real ``fab`` CLI (as :meth:`fab`) run until a line of its output (stdout and
        stderr) passes ``seen``; the block gets the running process and the lines so far."""
        with subprocess.Popen(self.fab_argv(args), cwd=self.dir, stdout=subprocess.PIPE, text=True,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL) as running:
            lines = []
            for line in running.stdout:
                lines.append(line)
                if seen(line):
                    break
            yield running, lines

    @contextmanager
    def ci_login(self) -> Iterator[str]:
        """The site's first host given a CI login (``ci``, a new key) and provisioned; yields
        an inventory holding that key only, as cron or CI would (the deploy user's key paths
        lead nowhere). On the way out the login is gone from ``inventory.yml`` again (the
        caller provisions, to take it off the server)."""
        key, path = self.dir / "ci_key", self.dir / "inventory.yml"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ci", "-f",
                            str(key)], check=True, timeout=30)
        original = path.read_text()
        doc = yaml.safe_load(original)
        host = doc["environments"][self.env_name]["hosts"][0]
        host.update(ci_user="ci", ci_key=str(key))
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        try:
            self.fab("provision")
            for each in doc["environments"][self.env_name]["hosts"]:
                each["key"] = str(self.dir / "no-such-deploy-key")
            (self.dir / "ci.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
            yield "ci.yml"
        finally:
            path.write_text(original)

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

    def live_release(self, env: str | None = None) -> str:
        """The release id ``current`` points at on the VPS."""
        site = f"shop-{env or self.env_name}"
        return self.sh(f"readlink /srv/{site}/current").strip().rsplit("/", 1)[-1]

    def release_states(self, env: str | None = None) -> dict[str, str]:
        """``{release id: state}`` as ``fab releases`` lists them."""
        out = self.fab("releases", env=env).stdout
        return {m[1]: m[2] for m in re.finditer(r"^ [ *] (\S+)\s+sha \S+\s+(\S+)", out, re.M)}

    def service_pids(self) -> dict[str, str]:
        units = f"nginx {cache.unit(self.env().site)} postgresql@15-main"
        out = self.sh(f"for s in {units}; do echo $s $(systemctl show -p MainPID --value $s); "
                      f"done")
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

    def get(self, path: str = "/", scheme: str = "https", timeout: float = 10,
            domain: str | None = None) -> tuple[int, str, dict[str, str]]:
        """GET through the domain, verifying TLS against Pebble's root; (status, body, headers)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                             urllib.request.ProxyHandler({}), NoRedirect())
        try:
            url = f"{scheme}://{domain or self.domain}{path}"
            with opener.open(url, timeout=timeout) as response:
                return response.status, response.read().decode(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace"), dict(exc.headers)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
