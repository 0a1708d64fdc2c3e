"""Remote operations: ``fab provision --env production``, ``fab deploy --env production``...

Each task loads the inventory, calls one function of the ``vpskit`` package, and turns a
``ToolkitError`` into a one-line message on stderr with exit code 1.
"""

from pathlib import Path

from fabric import task

from vpskit import backups, fleet, operate
from vpskit import init as app_init
from vpskit.cli import exits, inventory_path, load_env, remainder
from vpskit.deploy import deploy_environment, rollback_environment
from vpskit.provision import provision_environment
from vpskit.remove import remove as remove_site
from vpskit.restore import restore as restore_database
from vpskit.steps import Reporter

ENV = {"env": "environment from the inventory (e.g. production)",
       "inventory": "inventory file (default inventory.yml or $VPSKIT_INVENTORY)"}
HOSTS = {"hosts": "only these hosts (comma-separated addresses)",
         "role": "only the hosts with this role (web, worker, db, lb)"}


@task(help={"path": "the app's repository (default: here)", "force": "overwrite inventory.yml",
            "name": "app name (default: from the directory)"})
@exits
def init(c, path=".", force=False, name=None):
    """Detect the app (Django/Flask/ASGI, Procfile, railway.toml) and write inventory.yml."""
    written = app_init.write_inventory(Path(path), force=force, app_name=name)
    print(f"wrote {written}: fill in the host address and domains marked FILL ME, then run "
          f"fab provision --env production")


@task(help={**ENV, **HOSTS,
            "dry_run": "show what would change (diffs, secrets masked), change nothing"})
@exits
def provision(c, env=None, dry_run=False, inventory=None, hosts=None, role=None):
    """Turn fresh Debian/Ubuntu hosts into hardened app servers, all at once (idempotent)."""
    environment = load_env(env, inventory)
    provision_environment(environment, Reporter(), dry_run=dry_run,
                          hosts=fleet.select(environment, hosts, role))


@task(help={**ENV, **HOSTS, "ref": "branch, tag or sha to deploy (default: app.ref)",
            "batch": "web hosts switched at a time (default 1)"})
@exits
def deploy(c, env=None, ref=None, inventory=None, hosts=None, role=None, batch=1):
    """Ship a release: lock, build, backup, migrate, health-gated switch, auto-rollback."""
    environment = load_env(env, inventory)
    deploy_environment(environment, ref, Reporter(), fleet.select(environment, hosts, role),
                       batch=max(1, int(batch)))


@task(help={**ENV, **HOSTS, "to": "release id (default: the previous good release)"})
@exits
def rollback(c, env=None, to=None, inventory=None, hosts=None, role=None):
    """Switch back to the previous good release."""
    environment = load_env(env, inventory)
    rollback_environment(environment, to, Reporter(), fleet.select(environment, hosts, role))


@task(help=ENV)
@exits
def releases(c, env=None, inventory=None):
    """List releases with sha, time and state (* = live)."""
    operate.list_releases(load_env(env, inventory), Reporter())


@task(help=ENV)
@exits
def status(c, env=None, inventory=None):
    """Live release, sha, deploy time, service states, free disk."""
    operate.status(load_env(env, inventory), Reporter())


@task(help={**ENV, "follow": "keep streaming", "lines": "how many recent lines"})
@exits
def logs(c, env=None, follow=False, lines=100, inventory=None):
    """The app's journal."""
    operate.logs(load_env(env, inventory), follow, int(lines), Reporter())


@task(help=ENV)
@exits
def manage(c, env=None, inventory=None):
    """Run a management command in the live release: fab manage --env E -- createsuperuser."""
    code = operate.manage(load_env(env, inventory), remainder(c))
    if code:
        raise SystemExit(code)


@task(name="env", iterable=["set", "unset"],
      help={**ENV, "set": "KEY=VALUE (repeatable; KEY=- reads stdin)", "unset": "KEY"})
@exits
def env_(c, env=None, set=None, unset=None, inventory=None):  # noqa: A002 - CLI flag names
    """List the app's variables (values hidden), or set/unset them and restart the app."""
    operate.env_vars(load_env(env, inventory), set or [], unset or [], Reporter())


@task(help={**ENV, "list": "show the backups on the server and here, with sizes and ages",
            "verbose": "print each step (default: silent unless it fails, for cron)"})
@exits
def backup(c, env=None, list=False, verbose=False, inventory=None):  # noqa: A002 - CLI flag
    """Dump the database on the server, verify it, copy it here, prune old backups."""
    environment = load_env(env, inventory)
    local = backups.local_dir(environment, inventory_path(inventory))
    if list:
        backups.list_backups(environment, local, Reporter())
    else:
        backups.backup(environment, local, Reporter(quiet=not verbose))


@task(help={**ENV, "yes": "do not ask for confirmation (needed when stdin is not a terminal)"})
@exits
def remove(c, env=None, yes=False, inventory=None):
    """Take the environment off its hosts (a last dump is kept); other sites are untouched."""
    remove_site(load_env(env, inventory), yes, Reporter())


@task(help={**ENV, "file": "latest (default: the server's newest dump, safety dumps aside), a "
                           "backup's name on the server, or a local file to upload",
            "yes": "do not ask for confirmation (needed when stdin is not a terminal)"})
@exits
def restore(c, env=None, file="latest", yes=False, inventory=None):
    """Restore the database from a backup (after a safety dump), restart the app, check it."""
    restore_database(load_env(env, inventory), file, yes, Reporter())
