"""Remote operations: ``fab provision --env production``, ``fab deploy --env production``...

Each task loads the inventory, calls one function of the ``vpskit`` package, and turns a
``ToolkitError`` into a one-line message on stderr with exit code 1.
"""

from fabric import task

from vpskit import operate
from vpskit.cli import exits, load_env, not_built, remainder
from vpskit.deploy import deploy_environment, rollback_environment
from vpskit.provision import provision_environment
from vpskit.steps import Reporter

ENV = {"env": "environment from the inventory (e.g. production)",
       "inventory": "inventory file (default inventory.yml or $VPSKIT_INVENTORY)"}


@task(help={**ENV, "dry_run": "show what would change (diffs, secrets masked), change nothing"})
@exits
def provision(c, env=None, dry_run=False, inventory=None):
    """Turn fresh Debian/Ubuntu hosts into hardened app servers (idempotent)."""
    provision_environment(load_env(env, inventory), Reporter(), dry_run=dry_run)


@task(help={**ENV, "ref": "branch, tag or sha to deploy (default: app.ref)"})
@exits
def deploy(c, env=None, ref=None, inventory=None):
    """Ship a release: lock, build, backup, migrate, health-gated switch, auto-rollback."""
    deploy_environment(load_env(env, inventory), ref, Reporter())


@task(help={**ENV, "to": "release id (default: the previous good release)"})
@exits
def rollback(c, env=None, to=None, inventory=None):
    """Switch back to the previous good release."""
    rollback_environment(load_env(env, inventory), to, Reporter())


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


@task
@exits
def backup(c, env=None, inventory=None):
    """Dump the database on the server and copy it here."""
    not_built("backup", "issue 7")


@task
@exits
def restore(c, env=None, file=None, yes=False, inventory=None):
    """Restore the database from a backup (after a safety dump)."""
    not_built("restore", "issue 7")
