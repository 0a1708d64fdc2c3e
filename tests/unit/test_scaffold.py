"""What ``vpskit init`` writes beside the inventory: fabfile.py, fabric.yaml, .gitignore."""

from __future__ import annotations

import subprocess

from vpskit.init import scaffold


def test_gitignore_is_created_then_appended_never_duplicated(tmp_path):
    lines = scaffold.ignored_lines("backups")
    assert scaffold.update_gitignore(tmp_path, lines) == [
        f"added .env, .env.*, /backups/ to {tmp_path / '.gitignore'}"]
    assert scaffold.update_gitignore(tmp_path, lines) == []
    text = (tmp_path / ".gitignore").read_text()
    assert all(text.splitlines().count(line) == 1 for line in lines)


def test_gitignore_keeps_what_was_there_and_adds_only_the_missing(tmp_path):
    (tmp_path / ".gitignore").write_text("__pycache__/\n.env")  # no final newline
    scaffold.update_gitignore(tmp_path, scaffold.ignored_lines("/srv/backups"))
    assert (tmp_path / ".gitignore").read_text().splitlines() == [
        "__pycache__/", ".env", scaffold.GITIGNORE_HEADER, ".env.*", "/srv/backups/"]


def test_the_ignored_files_are_what_git_then_ignores(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    scaffold.update_gitignore(tmp_path, scaffold.ignored_lines("backups"))
    for name in (".env", ".env.production", "backups/shop-production-x.dump"):
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text("x")
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                            cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert status == "?? .gitignore\n"


def test_fabfile_and_fabric_yaml_written_once_and_others_kept(tmp_path):
    said = scaffold.write_fabfile(tmp_path)
    assert said == [f"wrote {tmp_path / 'fabfile.py'}", f"wrote {tmp_path / 'fabric.yaml'}"]
    assert "from vpskit.tasks import ns" in (tmp_path / "fabfile.py").read_text()
    assert scaffold.write_fabfile(tmp_path) == []
    (tmp_path / "fabfile.py").write_text("from fabric import task\n")
    said = scaffold.write_fabfile(tmp_path)
    assert len(said) == 1 and said[0].startswith(f"kept {tmp_path / 'fabfile.py'}")
    assert (tmp_path / "fabfile.py").read_text() == "from fabric import task\n"
