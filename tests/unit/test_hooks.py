"""Deploy hooks: the variables as data, the runner on real ``sh``, the inventory's validation."""

from __future__ import annotations

import io
import json
import os
import re
import textwrap
import time
from pathlib import Path

import pytest

from vpskit import hooks, inventory
from vpskit.config import TLS, App, Environment, Hooks, Host
from vpskit.errors import InventoryError, LockHeldError, ToolkitError
from vpskit.secret import Secret
from vpskit.steps import Reporter

SECRET = "app-secret-value-9c1f"
HOSTS = (Host("203.0.113.20"), Host("203.0.113.21", roles=("db",)))


def environment(tmp_path: Path | None = None, tls: bool = True, **commands: str) -> Environment:
    return Environment(name="production", hosts=HOSTS, domains=("shop.example.com", "www.x.com"),
                       app=App(name="shop", repo="."), tls=TLS(enabled=tls),
                       secrets={"SECRET_KEY": Secret(SECRET)}, hooks=Hooks(**commands),
                       inventory_dir=str(tmp_path or ""))


@pytest.mark.parametrize("tls,url", [(True, "https://shop.example.com/"),
                                     (False, "http://shop.example.com/")])
def test_variables_describe_the_release_and_hold_no_secret(tls, url):
    got = hooks.variables(environment(tls=tls), HOSTS, "20261127T101500Z-1a2b3c4", "1a2b3c4d" * 5,
                          "main")
    assert got == {"VPSKIT_ENV": "production", "VPSKIT_RELEASE": "20261127T101500Z-1a2b3c4",
                   "VPSKIT_SHA": "1a2b3c4d" * 5, "VPSKIT_REF": "main", "VPSKIT_URL": url,
                   "VPSKIT_HOSTS": "203.0.113.20,203.0.113.21"}
    assert SECRET not in "".join(got.values())


@pytest.mark.parametrize("error,line", [
    (LockHeldError("site locked by deploy abc\n  since 10:00"), "site locked by deploy abc since 10:00"),
    (KeyboardInterrupt("SIGTERM"), "interrupted (SIGTERM)"),
    (KeyboardInterrupt(), "interrupted (SIGINT)"),
    (OSError("no route"), "OSError: no route"),
    (ToolkitError("step x exited 3:  (full output: log)"), "step x exited 3:  (full output: log)"),
])
def test_failed_adds_the_error_as_one_line(error, line):
    assert hooks.failed({"VPSKIT_ENV": "production"}, error) == {
        "VPSKIT_ENV": "production", "VPSKIT_ERROR": line}


@pytest.mark.parametrize("output,line", [
    (b"first\nlast words\n\n", "last words"),
    (b"\x1b[31merror:\x1b[0m  upload   failed\n", "error: upload failed"),
    (b"10%\r50%\rstalled at 50%\r\n", "stalled at 50%"),
    (b"token " + SECRET.encode() + b" refused\n", "token *** refused"),
    (b"x" * 500, "x" * hooks.LINE_MAX),
    (b"", "(no output)"),
    (b"\xff\xfe bad bytes\n", "\ufffd\ufffd bad bytes"),
])
def test_last_line(output, line):
    assert hooks.last_line(output, hide=[SECRET]) == line


def test_hook_gets_the_operators_environment_plus_variables_in_cwd_without_stdin(
        tmp_path, monkeypatch):
    monkeypatch.setenv("OPERATOR_TOKEN", "from-my-shell")
    extra = hooks.variables(environment(), HOSTS, "r1", "abc", "main")
    hooks.run_hook("post_deploy", "env > hook.env; pwd > hook.cwd; cat > hook.stdin",
                   extra, tmp_path, timeout=10)
    lines = (tmp_path / "hook.env").read_text().splitlines()
    seen = dict(line.split("=", 1) for line in lines if "=" in line)
    assert {k: seen[k] for k in extra} == extra
    assert seen["OPERATOR_TOKEN"] == "from-my-shell"
    assert SECRET not in (tmp_path / "hook.env").read_text()
    assert (tmp_path / "hook.cwd").read_text().strip() == str(tmp_path)
    assert (tmp_path / "hook.stdin").read_text() == ""


def test_failing_hook_names_itself_its_exit_code_and_last_line(tmp_path):
    with pytest.raises(ToolkitError) as caught:
        hooks.run_hook("pre_deploy", "echo checking; echo 'tests are red' >&2; exit 7", {},
                       tmp_path)
    assert str(caught.value) == "pre_deploy hook failed (exit 7): tests are red"


def test_hook_killed_whole_at_its_timeout(tmp_path):
    start = time.monotonic()
    with pytest.raises(ToolkitError) as caught:  # the background sleep keeps the pipe open
        hooks.run_hook("post_deploy", "sleep 30 & echo waiting; sleep 30", {}, tmp_path,
                       timeout=0.5)
    assert str(caught.value) == "post_deploy hook failed (timed out after 0.5s): waiting"
    assert time.monotonic() - start < 10


def test_run_runs_the_inventorys_hook_in_its_directory(tmp_path):
    out = io.StringIO()
    hooks.run(environment(tmp_path, pre_deploy="echo $VPSKIT_ENV > ran"), "pre_deploy",
              {"VPSKIT_ENV": "production"}, Reporter(stream=out))
    assert (tmp_path / "ran").read_text() == "production\n"
    assert out.getvalue().startswith("pre_deploy hook ok in ")
    hooks.run(environment(tmp_path), "post_deploy", {}, Reporter(stream=out))  # none: nothing
    assert out.getvalue().count("\n") == 1


def test_run_masks_the_apps_secrets_in_its_error(tmp_path):
    env = environment(tmp_path, pre_deploy=f"echo 'bad key {SECRET}'; exit 2")
    with pytest.raises(ToolkitError, match=r"^pre_deploy hook failed \(exit 2\): bad key \*\*\*$"):
        hooks.run(env, "pre_deploy", {}, Reporter(stream=io.StringIO()))


def test_warn_reports_a_failure_in_one_stderr_line_and_goes_on(tmp_path, capsys):
    env = environment(tmp_path, post_deploy="echo 'sentry: 401 unauthorized'; exit 3")
    hooks.warn(env, "post_deploy", {}, Reporter(stream=io.StringIO()))
    assert capsys.readouterr().err == (
        "warning: post_deploy hook failed (exit 3): sentry: 401 unauthorized\n")


# ---- the inventory's hooks: section -------------------------------------------------------------
INVENTORY = """\
app:
  name: shop
  repo: https://example.com/shop.git
  entry: shop.wsgi:application
tls:
  email: ops@example.com
hooks:
  pre_deploy: ./scripts/check
  post_deploy: curl -fsS "$SLACK_WEBHOOK_URL"
environments:
  staging:
    hosts: [198.51.100.7]
    domains: [staging.shop.test]
    hooks:
      post_deploy: ""
  production:
    hosts: [198.51.100.8]
    domains: [shop.test]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(textwrap.dedent(text))
    return path


def test_hooks_are_defaults_an_environment_overrides_key_by_key(tmp_path):
    path = write(tmp_path, INVENTORY)
    production = inventory.load(path, "production", environ={})
    assert production.hooks == Hooks(pre_deploy="./scripts/check",
                                     post_deploy='curl -fsS "$SLACK_WEBHOOK_URL"')
    assert production.inventory_dir == str(tmp_path.resolve())
    staging = inventory.load(path, "staging", environ={})
    assert staging.hooks == Hooks(pre_deploy="./scripts/check")


@pytest.mark.parametrize("bad,expected", [
    ('  pre_deploy: "make check\\nmake deploy"\n',
     "inventory.yml:8: hooks.pre_deploy: 'make check\\nmake deploy': expected one line of shell"),
    ('  pre_deploy: "make\\0check"\n', "inventory.yml:8: hooks.pre_deploy: 'make\\x00check' has "
                                       "a NUL character"),
    ("  pre_deploy: [make, check]\n", "inventory.yml:8: hooks.pre_deploy: expected a string"),
    ("  pre_deploy:\n", "inventory.yml:8: hooks.pre_deploy: expected a string, got None"),
    ("  pre_deplyo: make check\n", "inventory.yml:8: hooks.pre_deplyo: unknown key; did you mean "
                                   "'pre_deploy'?"),
])
def test_a_bad_hook_is_refused_at_load_with_file_line_key_and_fix(tmp_path, bad, expected):
    text = INVENTORY.replace("  pre_deploy: ./scripts/check\n", bad)
    with pytest.raises(InventoryError) as caught:
        inventory.load(write(tmp_path, text), "production", environ={})
    assert str(caught.value).startswith(expected), str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_example_inventorys_commented_hooks_load_once_uncommented(tmp_path):
    text = (Path(__file__).parents[2] / "inventory.yml").read_text()
    assert "\n# hooks:" in text
    text = re.sub(r"^# (hooks:|  \w+:)", r"\1", text, flags=re.M)
    env = inventory.load(write(tmp_path, text), "production", environ={"SECRET_KEY": "k"})
    assert env.hooks.post_deploy.startswith("sentry-cli releases new -p shop")
    assert all(getattr(env.hooks, name) for name in ("pre_deploy", "post_rollback",
                                                      "failed_deploy"))


def test_the_readmes_hook_examples_are_the_commands_they_show_and_work(tmp_path):
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("\n## Hooks\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(hooks:\n.*?)```", section, re.S)
    texts = [re.sub(r"^hooks:\n(  .*\n)+", lambda _, b=block: b, INVENTORY, flags=re.M)
             for block in blocks]
    commands = [inventory.load(write(tmp_path, text), "production", environ={}).hooks.post_deploy
                for text in texts]
    assert commands == [
        'sentry-cli releases new -p shop "$VPSKIT_SHA" && sentry-cli releases finalize '
        '"$VPSKIT_SHA"',
        "curl -fsS -X POST -H 'Content-Type: application/json' -d \"{\\\"text\\\": \\\"deployed "
        "$VPSKIT_RELEASE to $VPSKIT_URL\\\"}\" \"$SLACK_WEBHOOK_URL\""]
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "curl").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > curl.args\n')
    (fake / "curl").chmod(0o755)
    extra = {**hooks.variables(environment(), HOSTS, "r1", "abc", "main"),
             "PATH": f"{fake}:{os.environ['PATH']}", "SLACK_WEBHOOK_URL": "https://hooks.test/x"}
    hooks.run_hook("post_deploy", commands[1], extra, tmp_path)
    args = (tmp_path / "curl.args").read_text().splitlines()
    assert json.loads(args[args.index("-d") + 1]) == {
        "text": "deployed r1 to https://shop.example.com/"}
    assert args[-1] == "https://hooks.test/x"
