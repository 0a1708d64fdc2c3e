"""Deploy hooks and the CI workflow on the real VPS: hooks see the release they deploy, a failing
``pre_deploy`` touches no server, a failing post hook never undoes a good deploy; the workflow
``vpskit init --ci github`` writes deploys from clean shells, one per ``run:`` step. Each test
restores the shared inventory it edits."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from harness.devtasks.sandbox import git
from tests.helpers.site import FAB, SECRET_KEY, Site

pytestmark = pytest.mark.vps

RELEASES = "/srv/shop-production/releases"
DUMPED = "env > {name}.env"  # a hook writing its environment into the site directory
DUMPS = ("pre", "post", "failed", "rollback")  # the names the tests give DUMPED
VARIABLES = ("VPSKIT_ENV", "VPSKIT_RELEASE", "VPSKIT_SHA", "VPSKIT_REF", "VPSKIT_URL",
             "VPSKIT_HOSTS", "VPSKIT_ERROR")  # what vpskit adds to a hook's environment


def deployed_release(result: subprocess.CompletedProcess) -> str:
    return re.search(r"^deployed shop-production (\S+) ", result.stdout, re.M)[1]


@contextmanager
def inventory_changed(site: Site, change: Callable[[dict], None]) -> Iterator[None]:
    """The site's inventory edited by ``change`` for the block, then restored byte for byte;
    the files hooks wrote into the site directory are removed."""
    path = site.dir / "inventory.yml"
    original = path.read_text()
    doc = yaml.safe_load(original)
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        yield
    finally:
        path.write_text(original)
        for name in DUMPS:
            (site.dir / f"{name}.env").unlink(missing_ok=True)


def with_hooks(**commands: str) -> Callable[[dict], None]:
    return lambda doc: doc.update(hooks=commands)


def hook_env(site: Site, name: str) -> dict[str, str]:
    """The variables of :data:`VARIABLES` hook ``name`` wrote; fails if the app's secret got
    there."""
    text = (site.dir / f"{name}.env").read_text()
    assert SECRET_KEY not in text
    found = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k: v for k, v in found.items() if k in VARIABLES}


def test_hooks_see_the_release_they_deploy(site, deployed):
    with inventory_changed(site, with_hooks(pre_deploy=DUMPED.format(name="pre"),
                                            post_deploy=DUMPED.format(name="post"),
                                            failed_deploy=DUMPED.format(name="failed"))):
        result = site.fab("deploy")
        pre, post = hook_env(site, "pre"), hook_env(site, "post")
        assert not (site.dir / "failed.env").exists()
    release = deployed_release(result)
    assert site.live_release() == release
    assert pre == post == {
        "VPSKIT_ENV": "production", "VPSKIT_RELEASE": release,
        "VPSKIT_SHA": git(site.app, "rev-parse", "HEAD").strip(), "VPSKIT_REF": "main",
        "VPSKIT_URL": f"https://{site.domain}/", "VPSKIT_HOSTS": site.env().hosts[0].address}
    assert "pre_deploy hook ok in" in result.stdout and "post_deploy hook ok in" in result.stdout


def test_failing_pre_deploy_hook_stops_before_any_server_is_touched(site, deployed):
    live, listed = site.live_release(), site.sh(f"ls {RELEASES}")
    with inventory_changed(site, with_hooks(pre_deploy="echo checking; echo 'CI is red' >&2; "
                                                       "exit 7",
                                            failed_deploy=DUMPED.format(name="failed"))):
        result = site.fab("deploy", check=False)
        assert not (site.dir / "failed.env").exists()  # the deploy never started
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["error: pre_deploy hook failed (exit 7): CI is red"]
    assert site.live_release() == live and site.sh(f"ls {RELEASES}") == listed


def test_failing_post_deploy_hook_is_a_warning_and_the_release_stays(site, deployed):
    before = site.live_release()
    with inventory_changed(site, with_hooks(post_deploy="echo 'slack: 404'; exit 3")):
        result = site.fab("deploy")  # exit 0, or it raises
    assert result.stderr.splitlines() == ["warning: post_deploy hook failed (exit 3): slack: 404"]
    release = deployed_release(result)
    assert release != before and site.live_release() == release
    status, _, _ = site.get("/health/")
    assert status == 200


def test_failed_deploy_hook_after_the_undo_and_post_rollback_hook(site, deployed):
    before = site.live_release()

    def failing_release(doc: dict) -> None:
        with_hooks(failed_deploy=DUMPED.format(name="failed"),
                   post_rollback=DUMPED.format(name="rollback"))(doc)
        doc["app"]["release_commands"] = ["python -c 'raise SystemExit(3)'"]

    with inventory_changed(site, failing_release):
        result = site.fab("deploy", check=False)
        failed = hook_env(site, "failed")
        assert result.returncode == 1 and site.live_release() == before
        assert failed["VPSKIT_ERROR"] == result.stderr.strip().removeprefix("error: ")
        assert failed["VPSKIT_RELEASE"] != before
        rollback = site.fab("rollback")
        assert hook_env(site, "rollback")["VPSKIT_RELEASE"] == site.live_release() != before
        assert "post_rollback hook ok in" in rollback.stdout
    site.fab("deploy")  # a fresh good release live again for the tests after this one


# ---- the CI workflow ----------------------------------------------------------------------------
def ci_checkout(site: Site, base: Path) -> Path:
    """What actions/checkout gives the workflow: a clone of the app at the pushed commit, with an
    inventory beside it (the site's, app.repo ``.``, SSH files under the runner's ``~``)."""
    checkout = base / "checkout"
    git(base, "clone", "-q", str(site.app), str(checkout))
    doc = yaml.safe_load((site.dir / "inventory.yml").read_text())
    doc["app"]["repo"] = "."
    for body in doc["environments"].values():
        for host in body["hosts"]:
            host.update(key="~/.ssh/vpskit-deploy", known_hosts="~/.ssh/vpskit-known-hosts")
            if "ci_key" in host:
                host["ci_key"] = "~/.ssh/vpskit-ci"
    (checkout / "inventory.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return checkout


def substituted(value: str, expressions: dict[str, str]) -> str:
    """``value`` with each ``${{ x }}`` replaced by ``expressions[x]`` (which must know it)."""
    return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", lambda m: expressions[m[1]], value)


def run_workflow(site: Site, wheel: Path, base: Path, ssh_key: str,
                 secrets: dict[str, str]) -> tuple[Path, subprocess.CompletedProcess]:
    """``vpskit init --ci github`` in a checkout of the site, then each ``run:`` step of the
    workflow in a clean shell, as the runner would (``ssh_key`` and ``secrets`` as the
    repository's secrets); the runner's home and the last step's result."""
    checkout = ci_checkout(site, base)
    said = subprocess.run([str(FAB.parent / "vpskit"), "init", "--ci", "github"], cwd=checkout,
                          capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
    assert "kept inventory.yml" in said.stdout.splitlines()
    workflow = yaml.safe_load((checkout / ".github/workflows/deploy.yml").read_text())
    home, temp = base / "home", base / "runner-temp"
    home.mkdir()
    temp.mkdir()
    expressions = {"secrets.VPSKIT_SSH_KEY": ssh_key,
                   "secrets.VPSKIT_KNOWN_HOSTS": Path(site.env().hosts[0].known_hosts).read_text(),
                   "vars.VPSKIT_PIP_SPEC": str(wheel), "runner.temp": str(temp),
                   "github.sha": git(checkout, "rev-parse", "HEAD").strip(),
                   **{f"secrets.{name}": value for name, value in secrets.items()}}
    runs = [step for step in workflow["jobs"]["deploy"]["steps"] if "run" in step]
    assert [step["name"] for step in runs] == ["Install vpskit", "SSH key and pinned host keys",
                                               "Deploy"]
    for step in runs:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home),
               **{k: substituted(v, expressions) for k, v in step["env"].items()}}
        done = subprocess.run(["setsid", "bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                               step["run"]], cwd=checkout, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{step['name']}:\n{done.stdout}\n{done.stderr}"
    return home, done


def test_ci_workflow_deploys_from_clean_shells(site, deployed, wheel, tmp_path):
    host = site.env().hosts[0]
    home, done = run_workflow(site, wheel, tmp_path, Path(host.key).read_text(),
                              {"SECRET_KEY": SECRET_KEY})
    for name in ("vpskit-deploy", "vpskit-known-hosts"):
        assert os.stat(home / ".ssh" / name).st_mode & 0o777 == 0o600
    release = deployed_release(done)
    sha = git(site.app, "rev-parse", "HEAD").strip()
    assert release.endswith(sha[:7]) and site.live_release() == release
    assert SECRET_KEY not in done.stdout + done.stderr


def test_ci_workflow_through_the_ci_login_holds_no_root_key_and_no_app_secret(
        site, deployed, wheel, tmp_path):
    """With a ``ci_user`` on production's one host, the workflow deploys with ``--ci``: the
    repository holds that login's key (not root) and none of the app's secrets."""
    with site.ci_login():
        home, done = run_workflow(site, wheel, tmp_path, (site.dir / "ci_key").read_text(), {})
        assert os.stat(home / ".ssh" / "vpskit-ci").st_mode & 0o777 == 0o600
        assert not (home / ".ssh" / "vpskit-deploy").exists()
        sha = git(site.app, "rev-parse", "HEAD").strip()
        assert f"deploy shop-production {sha[:7]} (" in done.stdout and " as ci" in done.stdout
        assert site.live_release() == deployed_release(done)
    site.fab("provision")  # the CI login gone again: the session's site goes on without it
