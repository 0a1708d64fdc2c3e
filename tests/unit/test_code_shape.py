"""Shape rules read from the source: one way to open an SSH channel and to hold a connection;
server-side scripts live in files (``vpskit/sh``), not in Python strings."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import vpskit

PACKAGE = Path(vpskit.__file__).parent


def sources_using(needle: str) -> set[str]:
    return {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if needle in p.read_text()}


def test_only_remote_opens_ssh_channels():
    assert sources_using("open_session(") == {"remote.py"}
    assert sources_using("get_transport(") == {"remote.py"}


def test_connections_are_closed_by_one_context_manager():
    assert sources_using("conn.close()") <= {"remote.py", "ssh.py"}
    assert sources_using("open_remote(") == {"session.py"}


def test_server_scripts_are_files_named_in_the_code():
    inline = {name for name in sources_using('"bash", "-c", ')
              if re.search(r'"bash", "-c", [\'"rf]', (PACKAGE / name).read_text())}
    assert inline == set()
    named = {m for p in PACKAGE.rglob("*.py") for m in re.findall(r'sh\.script\("([\w-]+)"\)',
                                                                  p.read_text())}
    files = {p.stem for p in (PACKAGE / "sh").glob("*.sh")}
    assert named == files  # none missing, none left unused


def test_no_function_is_over_sixty_lines():
    long = [f"{p.relative_to(PACKAGE)}:{node.name} ({node.end_lineno - node.lineno + 1})"
            for p in PACKAGE.rglob("*.py")
            for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > 60]
    assert long == []
