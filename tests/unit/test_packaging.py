"""The wheel works on its own: the package, its templates and nothing of the test rig."""

from __future__ import annotations

import re
import tomllib
import zipfile

from tests.helpers.installed import REPOSITORY


def test_the_wheel_holds_the_package_and_templates_and_no_harness(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    templates = sorted(p.relative_to(REPOSITORY).as_posix()
                       for p in (REPOSITORY / "templates").rglob("*.j2"))
    assert templates and all(f"vpskit/{t}" in names for t in templates)
    assert not [n for n in names if n.startswith(("harness/", "tests/", "examples/"))
                or "testvps" in n or "devtasks" in n]
    modules = sorted(p.relative_to(REPOSITORY).as_posix()
                     for p in (REPOSITORY / "vpskit").rglob("*.py"))
    assert [m for m in modules if m not in names] == []  # every module ships
    scripts = sorted(p.relative_to(REPOSITORY).as_posix()
                     for p in (REPOSITORY / "vpskit" / "sh").glob("*.sh"))
    assert scripts and [s for s in scripts if s not in names] == []  # and every server script
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "vpskit = vpskit.program:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_every_package_of_the_tree_is_listed_for_the_wheel():
    listed = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]
    found = sorted(".".join(p.parent.relative_to(REPOSITORY).parts)
                   for p in (REPOSITORY / "vpskit").rglob("__init__.py"))
    assert sorted(set(listed) - {"vpskit.templates"}) == found


def test_nothing_in_the_package_imports_the_harness():
    offenders = [p.name for p in (REPOSITORY / "vpskit").rglob("*.py")
                 if re.search(r"^\s*(from|import) harness\b", p.read_text(), re.MULTILINE)]
    assert offenders == []
