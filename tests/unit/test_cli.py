"""The ``vpskit`` command and the flag checks shared by the tasks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vpskit import __version__
from vpskit.cli import positive_int
from vpskit.errors import ToolkitError

VPSKIT = Path(sys.executable).parent / "vpskit"
HEAVY = ("psycopg", "jinja2", "paramiko", "fabric")  # yaml: Invoke itself loads it


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(VPSKIT), *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


def test_vpskit_lists_tasks_and_its_version_in_any_directory(tmp_path):
    listed = run("--list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for name in ("init", "provision", "deploy", "rollback", "backup", "restore", "manage", "env"):
        assert f"  {name} " in listed.stdout
    assert run("--version", cwd=tmp_path).stdout.strip() == f"vpskit {__version__}"
    assert "--env" in run("deploy", "--help", cwd=tmp_path).stdout


def test_help_and_list_load_no_ssh_postgres_or_template_code():
    code = ("import sys; from vpskit.program import program\n"
            "for args in (['--help'], ['--list'], ['deploy', '--help']):\n"
            "    try: program.run(['vpskit', *args])\n"
            "    except SystemExit: pass\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_a_task_without_an_inventory_is_one_line(tmp_path):
    result = run("status", "--env", "production", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


@pytest.mark.parametrize("value", ["x", "0", "-2", "", "1.5"])
def test_a_count_flag_that_is_not_a_positive_integer_is_one_line(value):
    with pytest.raises(ToolkitError, match=r"--batch .*: expected a whole number of at least 1"):
        positive_int("--batch", value)


def test_bad_batch_and_lines_fail_before_the_inventory_is_read(tmp_path):
    for args in (("deploy", "--batch", "x"), ("logs", "--lines", "abc")):
        result = run(*args, "--env", "production", cwd=tmp_path)
        assert result.returncode == 1 and "expected a whole number" in result.stderr
        assert "Traceback" not in result.stderr
