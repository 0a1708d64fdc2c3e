"""The operator's tasks: ``vpskit deploy --env production`` or ``fab deploy --env production``.

One collection, :data:`ns`, behind the ``vpskit`` command, this repository's ``fabfile.py`` and
the ``fabfile.py`` that ``vpskit init`` writes into an app's repository. Each task parses its
flags, loads the inventory, calls one function of the package and turns a ``ToolkitError`` into
a one-line message on stderr with exit code 1. The work is imported inside each task, so
``--help`` and ``--list`` start without loading SSH, Postgres or template code.
"""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, task

from vpskit.cli import exits, inventory_path, load_env, positive_int, remainder
from vpskit.errors import ToolkitError

ENV = {"env": "environment from the inventory (e.g. production)",
       "inventory": "inventory file (default inventory.yml or $VPSKIT_INVENTORY)"}
HOSTS = {"hosts": "only these hosts (comma-separated addresses)",
         "role": "only the hosts with this role (web, worker, db, lb)"}
CI = ("through the first host's ci_user: its resident vpskit does it on every host, with the "
      "inventory and secrets of the last fab provision")


def _reporter(quiet: bool = False):
    from vpskit.steps import Reporter
    return Reporter(quiet=quiet)


def _only_flag(flag: str, **others) -> None:
    """A one-line error when ``flag`` comes with any of ``others``, which it does not take."""
    given = [f"--{name.replace('_', '-')}" for name, value in others.items() if value]
    if given:
        raise ToolkitError(f"{flag} does not take {', '.join(given)}")


def _selected(environment, hosts, role):
    from vpskit import fleet
    return fleet.select(environment, hosts, role)


@task(help={"path": "the app's repository (default: here)",
            "force": "overwrite inventory.yml (with --ci: the CI workflow)",
            "name": "app name (default: from the directory)",
            "ci": "also write a CI workflow deploying each push to production: github "
                  "(an existing inventory.yml is kept and read)"})
@exits
def init(c, path=".", force=False, name=None, ci=None):
    """Detect the app and write inventory.yml, fabfile.py and .gitignore entries beside it."""
    from vpskit import init as app_init
    said = app_init.write_files(Path(path), force=force, app_name=name, ci=ci)
    print("\n".join(said))
    if said[0].startswith("wrote"):  # a new inventory, not one kept for --ci
        print("next: fill in the host address and domains marked FILL ME in inventory.yml, "
              "then run: vpskit provision --env production")


@task(help={**ENV, **HOSTS,
            "dry_run": "show what would change (diffs, secrets masked), change nothing"})
@exits
def provision(c, env=None, dry_run=False, inventory=None, hosts=None, role=None):
    """Turn fresh Debian/Ubuntu hosts into hardened app servers, all at once (idempotent)."""
    environment = load_env(env, inventory)
    selected = _selected(environment, hosts, role)
    from vpskit import session
    with session.opening(selected, lambda host: session.open_for_provision(environment, host)
                         ) as connect:  # connecting while the steps' code loads
        from vpskit.provision.runner import provision_environment
        provision_environment(environment, _reporter(), dry_run=dry_run, hosts=selected,
                              connect=connect)


@task(help={**ENV, **HOSTS, "ref": "branch, tag or sha to deploy (default: app.ref)",
            "batch": "web hosts switched at a time (default 1)",
            "maintenance": "503 (maintenance mode) from before the release commands until after "
                           "the switch: for migrations the old release cannot run with",
            "ci": CI})
@exits
def deploy(c, env=None, ref=None, inventory=None, hosts=None, role=None, batch="1",
           maintenance=False, ci=False):
    """Ship a release: lock, build, backup, migrate, health-gated switch, auto-rollback."""
    size = positive_int("--batch", batch)
    if ci:
        _only_flag("--ci", hosts=hosts, role=role)
        from vpskit import through_ci
        through_ci.deploy(load_env(env, inventory, every_secret=False), ref, _reporter(),
                          batch=size, maintenance=maintenance)
        return
    environment = load_env(env, inventory)
    from vpskit.deploy.run import deploy_environment
    deploy_environment(environment, ref, _reporter(), _selected(environment, hosts, role),
                       batch=size, with_maintenance=maintenance)


@task(positional=["state"], help={**ENV, "state": "on or off"})
@exits
def maintenance(c, state, env=None, inventory=None):
    """Maintenance mode: fab maintenance --env E on|off (503 but the health path and allowed)."""
    from vpskit.maintenance import check_state, switch_environment
    on = check_state(state)  # first: Invoke passes a --help after the task name in as the state
    switch_environment(load_env(env, inventory), on, _reporter())


@task(help={**ENV, **HOSTS, "to": "release id (default: the previous good release)",
            "dry_run": "say what each step would do (diffs included), change nothing",
            "ci": CI})
@exits
def rollback(c, env=None, to=None, inventory=None, hosts=None, role=None, dry_run=False,
             ci=False):
    """Switch back to the previous good release."""
    if ci:
        _only_flag("--ci", hosts=hosts, role=role, dry_run=dry_run)
        from vpskit import through_ci
        through_ci.rollback(load_env(env, inventory, every_secret=False), to, _reporter())
        return
    environment = load_env(env, inventory)
    from vpskit.deploy.run import rollback_environment
    rollback_environment(environment, to, _reporter(), _selected(environment, hosts, role),
                         dry_run=dry_run)


@task(help=ENV)
@exits
def releases(c, env=None, inventory=None):
    """List releases with sha, time and state (* = live)."""
    environment = load_env(env, inventory)
    from vpskit import operate
    operate.list_releases(environment, _reporter())


@task(help={**ENV, "json": "print the numbers as JSON, for scripts"})
@exits
def status(c, env=None, json=False, inventory=None):
    """Live release, units (CPU, memory, restarts), requests (rate, 5xx, latency), database
    and backups, free disk, maintenance mode: per host."""
    environment = load_env(env, inventory)
    from vpskit import status
    status.status(environment, _reporter(), as_json=json)


@task(help={**ENV, "follow": "keep streaming", "lines": "how many recent lines"})
@exits
def logs(c, env=None, follow=False, lines="100", inventory=None):
    """The app's journal."""
    count = positive_int("--lines", lines)
    environment = load_env(env, inventory)
    from vpskit import operate
    operate.logs(environment, follow, count, _reporter())


@task(help=ENV)
@exits
def manage(c, env=None, inventory=None):
    """Run a management command in the live release: vpskit manage --env E -- createsuperuser."""
    environment = load_env(env, inventory)
    from vpskit import operate
    code = operate.manage(environment, remainder(c))
    if code:
        raise SystemExit(code)


@task(name="env", iterable=["set", "unset"],
      help={**ENV, "set": "KEY=VALUE (repeatable; KEY=- reads stdin)", "unset": "KEY"})
@exits
def env_(c, env=None, set=None, unset=None, inventory=None):  # noqa: A002 - CLI flag names
    """List the app's variables (values hidden), or set/unset them and restart the app."""
    environment = load_env(env, inventory)
    from vpskit import operate
    operate.env_vars(environment, set or [], unset or [], _reporter())


@task(help={**ENV, "list": "show the backups on the server and here, with sizes and ages",
            "verbose": "print each step (default: silent unless it fails, for cron)"})
@exits
def backup(c, env=None, list=False, verbose=False, inventory=None):  # noqa: A002 - CLI flag
    """Dump the database on the server, verify it, copy it here, prune old backups."""
    from vpskit import backups
    environment = load_env(env, inventory, every_secret=False)
    if not backups.through_ci_login(environment):  # as root: the same inventory as a deploy
        environment = load_env(env, inventory)
    local = backups.local_dir(environment, inventory_path(inventory))
    if list:
        backups.list_backups(environment, local, _reporter())
    else:
        backups.backup(environment, local, _reporter(quiet=not verbose))


@task(help={**ENV, "run": "run this job now and print its output (exit 1 when it fails)"})
@exits
def jobs(c, env=None, run=None, inventory=None):
    """Scheduled jobs: next run and last runs with result and duration; --run NAME runs one."""
    environment = load_env(env, inventory)
    from vpskit import jobs as scheduled
    if run:
        code = scheduled.run_now(environment, run, _reporter())
        if code:
            raise SystemExit(code)
    else:
        scheduled.show(environment, _reporter())


@task(help={**ENV, "yes": "do not ask for confirmation (needed when stdin is not a terminal)",
            "dry_run": "only say what would be removed, a line each; change nothing"})
@exits
def remove(c, env=None, yes=False, inventory=None, dry_run=False):
    """Take the environment off its hosts (a last dump is kept); other sites are untouched."""
    environment = load_env(env, inventory)
    from vpskit.remove import remove as remove_site
    remove_site(environment, yes, _reporter(), dry_run=dry_run)


@task(help={**ENV, "file": "latest (default: the server's newest dump, safety dumps aside), a "
                           "backup's name on the server, or a local file to upload",
            "yes": "do not ask for confirmation (needed when stdin is not a terminal)",
            "from": "server (default) or offsite: fetch the copy from the bucket and decrypt "
                    "it here first (--file names one; default the newest)",
            "ci": CI + " (with --yes; --file names a backup on the server)"})
@exits
def restore(c, env=None, file="latest", yes=False, inventory=None, from_="server", ci=False):
    """Restore the database from a backup (after a safety dump), restart the app, check it."""
    if ci:
        if not yes or from_ != "server":
            raise ToolkitError("--ci restores a backup on the server with --yes (the server "
                               "cannot ask); drop --from, add --yes")
        from vpskit import through_ci
        through_ci.restore(load_env(env, inventory, every_secret=False), file, _reporter())
        return
    environment = load_env(env, inventory)
    from vpskit.restore import restore as restore_database
    restore_database(environment, file, yes, _reporter(), source=from_)


@task(help={**ENV, "test": "send a test notice and a heartbeat from the server"})
@exits
def alerts(c, env=None, test=False, inventory=None):
    """The watchdog's receivers and limits; --test sends a test notice through them."""
    environment = load_env(env, inventory)
    from vpskit import alerts as watch
    if test:
        watch.send_test(environment, _reporter())
    else:
        for line in watch.describe(environment):
            print(line)


ns = Collection(init, provision, deploy, rollback, releases, status, logs, manage, env_, backup,
                remove, restore, maintenance, jobs, alerts)
