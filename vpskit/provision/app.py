"""The site's directory tree, its env file and its systemd units."""

from __future__ import annotations

from vpskit import envfile, facts, jobs, render
from vpskit.config import Environment, Host
from vpskit.deploy import releases, restart_host
from vpskit.deploy.lock import deploy_lock
from vpskit.files import FileSpec, file_probe
from vpskit.provision.context import Context
from vpskit.steps import Reporter


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


def probes(ctx: Context) -> list[facts.Probe]:
    return [
        facts.owners([d[0] for d in directories(ctx.env, ctx.host)], "dirs"),
        facts.text(str(ctx.env.env_file), "env_file"),
        file_probe([str(ctx.env.env_file), *render.unit_files(ctx.env)], "app_files"),
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


def site_dirs(ctx: Context) -> list[str]:
    """Create or fix the site's directories; never deletes one."""
    changes = []
    for path, owner, group, mode in directories(ctx.env, ctx.host):
        if ctx.facts["dirs"].get(path) != (owner, group, mode):
            ctx.act(["install", "-d", "-o", owner, "-g", group, "-m", mode, path])
            changes.append(path)
    return [f"directories: {' '.join(changes)}"] if changes else []


def app_service(ctx: Context) -> list[str]:
    """Env file (0600, app user) and units; a change has the app restart last
    (:func:`restart`)."""
    env = ctx.env
    values = desired_env(env, ctx.app_env, ctx.managed_env)
    specs = [FileSpec(str(env.env_file), envfile.render(values), env.app_user, env.app_user,
                      0o600, secret=True)]
    specs += [FileSpec(path, content) for path, content in render.unit_files(env).items()]
    changes = ctx.apply_files(specs, ctx.facts["app_files"])
    if any(path in c for c in changes for path in render.unit_files(env)):
        ctx.act(["systemctl", "daemon-reload"])
    ctx.restart_app = bool(changes)
    return changes


def restart(ctx: Context) -> list[str]:
    """After every other step (Nginx and TLS included): the live release restarted with the
    new env file and units, gracefully, as ``fab env --set`` does, once any deploy running
    has finished."""
    if ctx.dry_run:
        live = releases.load(ctx.remote, ctx.env).current
        return [f"{live} would restart as a new release"] if live else []
    with deploy_lock(ctx.remote, ctx.env.site, "provision", queue=600):
        made = restart_host(ctx.env, ctx.host, ctx.remote, "provision: env or units",
                            Reporter(quiet=True))
    return [f"restarted as {made.id}"] if made else []


def scheduled_jobs(ctx: Context) -> list[str]:
    """The site's job timers and services: on the job host, as the inventory lists them; on
    the other app hosts, none (:mod:`vpskit.jobs`)."""
    todo = jobs.plan(ctx.env, ctx.host, ctx.facts["jobs_installed"], ctx.facts["job_timers"])
    return jobs.apply(ctx.remote, todo, ctx.dry_run)
