"""The site's directory tree, its env file and its systemd units."""

from __future__ import annotations

from dataclasses import dataclass

from vpskit import envfile, facts, plan, render
from vpskit.config import Environment, Host
from vpskit.files import FileSpec, FileState, file_probe
from vpskit.plan import Plan


def directories(env: Environment, host: Host) -> list[tuple[str, str, str, str]]:
    """(path, owner, group, mode) of every directory the site needs on ``host`` (pure)."""
    site = env.app_user
    found = []
    if host.serves_app:
        found += [(str(env.root), "root", site, "750"),
                  (str(env.releases_dir), "root", site, "750"),
                  (str(env.shared_dir), "root", site, "750"),
                  (str(env.shared_dir / "media"), site, site, "750"),
                  (str(env.shared_dir / "static"), site, site, "750")]
    if host == env.db_host:
        found.append((str(env.backup_dir), "root", "root", "700"))
    if "web" in host.roles or "lb" in host.roles:
        found += [(f"/etc/nginx/vpskit/{env.site}", "root", "root", "755"),
                  (render.ACME_WEBROOT, "root", "root", "755")]
    return found


@dataclass(frozen=True)
class DirectoryFacts:
    dirs: dict[str, tuple[str, str, str]]  # path: (owner, group, mode)


@dataclass(frozen=True)
class AppFacts:
    app_files: dict[str, FileState]
    app_env: dict[str, str]  # the server's env file as found (from the fact ``env_file``)
    managed_env: dict[str, str]  # the values earlier steps made (service URLs)


@dataclass(frozen=True)
class RestartFacts:
    live_release: str  # where ``current`` points (releases/<id>); "" when nothing is deployed
    restart_app: bool = False  # the app step changed the env file or units


def probes(env: Environment, host: Host) -> list[facts.Probe]:
    return [
        facts.owners([d[0] for d in directories(env, host)], "dirs"),
        facts.text(str(env.env_file), "env_file"),
        file_probe([str(env.env_file), *render.unit_files(env)], "app_files"),
        facts.link(str(env.current_link), "live_release"),
    ]


def base_env(env: Environment) -> dict[str, str]:
    """What every app receives before the inventory's own ``env`` and secrets (pure)."""
    values = {
        "ALLOWED_HOSTS": ",".join(env.domains),
        "CSRF_TRUSTED_ORIGINS": ",".join(f"https://{d}" for d in env.domains),
        "STATIC_ROOT": str(env.shared_dir / "static"),
        "MEDIA_ROOT": str(env.shared_dir / "media"),
        "APP_ENV": env.name,
    }
    if env.app.django_settings:
        values["DJANGO_SETTINGS_MODULE"] = env.app.django_settings
    return values


def desired_env(env: Environment, current: dict[str, str], managed: dict[str, str]
                ) -> dict[str, str]:
    """The env file: what is there (e.g. ``fab env set``), overridden by our values; the
    secrets vpskit itself uses are not the app's (pure)."""
    secrets = {k: v.reveal() for k, v in env.secrets.items() if k not in env.tool_secrets}
    return {**current, **base_env(env), **managed, **env.env, **secrets}


def site_dirs(env: Environment, host: Host, found: DirectoryFacts) -> Plan:
    """Create or fix the site's directories; never deletes one."""
    todo = [(path, owner, group, mode) for path, owner, group, mode in directories(env, host)
            if found.dirs.get(path) != (owner, group, mode)]
    if not todo:
        return Plan()
    return Plan(tuple(plan.Run(("install", "-d", "-o", owner, "-g", group, "-m", mode, path))
                      for path, owner, group, mode in todo),
                (f"directories: {' '.join(path for path, *_ in todo)}",))


def app_service(env: Environment, host: Host, found: AppFacts) -> Plan:
    """Env file (0600, app user) and units; a change has the app restart last
    (:func:`restart`)."""
    values = desired_env(env, found.app_env, found.managed_env)
    specs = [FileSpec(str(env.env_file), envfile.render(values), env.app_user, env.app_user,
                      0o600, secret=True)]
    specs += [FileSpec(path, content) for path, content in render.unit_files(env).items()]
    write = plan.write(specs, found.app_files)
    units = set(render.unit_files(env)) & set(plan.writes(write))
    return (write + (plan.run("systemctl", "daemon-reload") if units else Plan())
            + plan.outputs(restart_app=bool(write.actions)))


def restart(env: Environment, host: Host, found: RestartFacts) -> Plan:
    """After every other step (Nginx and TLS included): the live release restarted with the
    new env file and units, gracefully, as ``fab env --set`` does, once any deploy running
    has finished (the hatch ``restart_app``)."""
    if not found.restart_app or not found.live_release:
        return Plan()
    live = found.live_release.rstrip("/").rsplit("/", 1)[-1]
    return plan.hatch("restart_app", would=f"{live} would restart as a new release")
