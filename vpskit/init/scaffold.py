"""The files ``vpskit init`` writes beside ``inventory.yml`` so the app's repository runs every
task with ``fab`` as well as ``vpskit``, and is safe to commit.

- ``fabfile.py``: a few lines exposing the installed tasks;
- ``fabric.yaml``: the executor the tasks rely on (``fab manage -- createsuperuser`` passes
  the words after ``--`` to the task instead of running them as a shell command);
- ``.gitignore``: the secrets files and the local backup directory, appended line by line,
  never duplicated.
"""

from __future__ import annotations

from pathlib import Path

FABFILE = '''\
"""vpskit's tasks for this app: `fab --list` (the same as `vpskit --list`).

Written by `vpskit init`; the tasks live in the installed vpskit package.
"""

from vpskit.tasks import ns  # noqa: F401
'''
FABRIC_YAML = """\
# Written by `vpskit init`: vpskit's executor hands the words after `--` to the task
# (`fab manage --env production -- createsuperuser`).
tasks:
  executor_class: vpskit.cli.Executor
"""
WHAT_IT_NEEDS = {"fabfile.py": "`from vpskit.tasks import ns`",
                 "fabric.yaml": "`tasks: {executor_class: vpskit.cli.Executor}`"}
GITIGNORE_HEADER = "# vpskit: secrets and local backups never go into the repository"


def ignored_lines(backup_dir: str) -> list[str]:
    """The ``.gitignore`` lines vpskit needs: secrets files and the local backup directory."""
    return [".env", ".env.*", f"/{backup_dir.strip('/')}/"]


def write_fabfile(directory: Path) -> list[str]:
    """Write ``fabfile.py`` and ``fabric.yaml`` unless present; say what was written or kept."""
    said = []
    for name, text in (("fabfile.py", FABFILE), ("fabric.yaml", FABRIC_YAML)):
        target = directory / name
        if not target.exists():
            target.write_text(text)
            said.append(f"wrote {target}")
        elif "vpskit" not in target.read_text(errors="replace"):
            said.append(f"kept {target}: to run vpskit's tasks with fab, add "
                        f"{WHAT_IT_NEEDS[name]} (or use the vpskit command)")
    return said


def update_gitignore(directory: Path, lines: list[str]) -> list[str]:
    """Append the missing ``lines`` to ``directory/.gitignore`` (created if needed)."""
    target = directory / ".gitignore"
    text = target.read_text() if target.exists() else ""
    present = {line.strip() for line in text.splitlines()}
    missing = [line for line in lines if line not in present]
    if not missing:
        return []
    prefix = "" if not text or text.endswith("\n") else "\n"
    with target.open("a") as handle:
        handle.write(prefix + "\n".join([GITIGNORE_HEADER, *missing]) + "\n")
    return [f"added {', '.join(missing)} to {target}"]
