"""Maintenance mode: Nginx answers every request with 503, ``Retry-After`` and a page, but the
health path, ACME challenges and the clients of ``maintenance.allow``. It is served where the
world connects: the lb host when there is one, else every web host.

The state is a file on each of those hosts, the include the site's server block reads through
a glob (:func:`vpskit.render.maintenance_path`; absent = off). Provision and deploy never write
it, so maintenance lasts through them and through reboots until it is turned off. The page is
the app's ``maintenance.html`` (repository root) or a plain default.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from vpskit import facts, files, fleet, render, session
from vpskit.config import Environment, Host
from vpskit.deploy.switch import SWITCH_NGINX
from vpskit.errors import RemoteError, ToolkitError
from vpskit.remote import Remote
from vpskit.steps import Reporter

PAGE = "maintenance.html"  # the app's own 503 page, at its repository's root


def page(text: bytes | str | None) -> str:
    """The app's page (as UTF-8, undecodable bytes replaced), or the default one (pure)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text if text else render.default_maintenance_page()


def probe(env: Environment) -> facts.Probe:
    """Whether the site is in maintenance on this host."""
    return facts.Probe("maintenance", f"test -e {shlex.quote(render.maintenance_path(env))}",
                       lambda out, rc: rc == 0)


def turn_on(remote: Remote, env: Environment, host: Host, text: str) -> bool:
    """Install the page and the include, then reload Nginx gracefully when either changed;
    returns once no Nginx worker serves the app any more. True when maintenance was off.
    Refuses a site provisioned before maintenance mode existed (its include is missing)."""
    lb = "lb" in host.roles
    site = render.lb_site_path(env) if lb else render.site_path(env)
    conf = render.maintenance_path(env)
    specs = [files.FileSpec(render.maintenance_page_path(env), text),
             files.FileSpec(conf, render.nginx_maintenance(env, lb))]
    found = facts.gather(remote, [
        files.file_probe([s.path for s in specs]),
        facts.Probe("included", f"grep -qF {shlex.quote(render.maintenance_include(env))} "
                                f"{shlex.quote(site)}", lambda out, rc: rc == 0)])
    if not found["included"]:
        raise ToolkitError(f"{remote.host}: {site} has no maintenance include (provisioned by "
                           f"an older vpskit); run fab provision --env {env.name} first")
    changed = [s for s in specs if files.differences(s, found["files"].get(s.path))]
    if changed:
        remote.run(["install", "-d", "-m", "755", render.MAINTENANCE_DIR])
        for spec in changed:
            files.write(remote, spec)
        if not _reload(remote, env):
            remote.run(["rm", "-f", conf])
            raise RemoteError(f"{remote.host}: nginx refused the maintenance include; "
                              f"maintenance stays off")
    return conf not in found["files"]


def turn_off(remote: Remote, env: Environment) -> bool:
    """Remove the include, reload Nginx gracefully (when it was on), then remove the page the
    old workers served until then; returns once every Nginx worker serves the app. True when
    maintenance was on."""
    was_on = facts.gather(remote, [probe(env)])["maintenance"]
    remote.run(["rm", "-f", render.maintenance_path(env)])
    if was_on and not _reload(remote, env):
        raise RemoteError(f"{remote.host}: nginx refused its configuration without the "
                          f"maintenance include; check: sudo nginx -t")
    remote.run(["rm", "-f", render.maintenance_page_path(env)])
    return was_on


def _reload(remote: Remote, env: Environment) -> bool:
    """``nginx -t`` and a graceful reload that waits for the old workers; False if refused."""
    result = remote.run(["bash", "-c", SWITCH_NGINX, "maintenance", str(env.app.graceful_timeout)],
                        check=False, timeout=env.app.graceful_timeout + 60)
    return result.exited not in (3, 4)


def describe(env: Environment, on: bool) -> str:
    """What maintenance on/off means for the site, in one line (pure)."""
    if not on:
        return f"{env.site} serves the app"
    allowed = len(env.maintenance.allow)
    return (f"{env.site} answers 503 (Retry-After {env.maintenance.retry_after}) but "
            f"{env.health.path}" + (f" and {allowed} allowed address(es)" if allowed else ""))


def check_state(state: str) -> bool:
    """``on`` -> True, ``off`` -> False; anything else is a one-line error (pure)."""
    if state not in ("on", "off"):
        raise ToolkitError(f"maintenance {state!r}: expected on or off, e.g. fab maintenance "
                           f"--env production on (help: fab --help maintenance)")
    return state == "on"


def switch_environment(env: Environment, on: bool, out: Reporter) -> None:
    """``fab maintenance on|off`` on every host that faces the world; "on" takes the page from
    the live release on the first web host."""
    text = page(_live_page(env)) if on else ""
    state = "on" if on else "off"

    def one(host: Host, host_out: Reporter) -> None:
        with session.connected(env, host) as remote:
            changed = turn_on(remote, env, host, text) if on else turn_off(remote, env)
        host_out.line(f"maintenance {state}{'' if changed else ' (already)'}: "
                      f"{describe(env, on)}")
    fleet.each_or_raise(env.public_hosts, one, out, "maintenance")


def _live_page(env: Environment) -> str | None:
    """The live release's maintenance.html, None when it has none (or nothing is deployed)."""
    with session.connected(env, env.hosts_with("web")[0]) as remote:
        found = remote.run(["cat", f"{env.current_link}/{PAGE}"], check=False)
    return found.stdout if found.ok else None


@dataclass
class DeployWindow:
    """Maintenance around a deploy (``fab deploy --maintenance``): on before the pre-deploy dump
    and the release commands, off after the switch, and off again when the deploy is undone
    (the old release serves again). A host already in maintenance before stays in it."""

    env: Environment
    opened: list[tuple[Host, Remote]] = field(default_factory=list)

    def open(self, hosts: Sequence[tuple[Host, Remote]], app_page: bytes | None,
             out: Reporter) -> None:
        """On for ``hosts`` (those facing the world, connected), with the release's page."""
        text = page(app_page)
        for host, remote in hosts:
            if turn_on(remote, self.env, host, text):
                self.opened.append((host, remote))
            else:
                out.line(f"{host.address}: already in maintenance; it stays on after the "
                         f"deploy (fab maintenance --env {self.env.name} off ends it)")
        out.line(f"maintenance on: {describe(self.env, True)}")

    def close(self, out: Reporter) -> None:
        """Off where :meth:`open` turned it on (nothing without it; idempotent)."""
        while self.opened:
            host, remote = self.opened[-1]
            turn_off(remote, self.env)
            self.opened.pop()
            out.line(f"maintenance off on {host.address}")
