"""The app's repository as ``fab init`` reads it: small text files and the Python sources."""

from __future__ import annotations

from pathlib import Path

from vpskit.init.detected import Detected

SKIP_DIRS = frozenset({".git", ".venv", "venv", "env", ".tox", ".nox", "node_modules",
                       "site-packages", "__pycache__", "migrations", "tests", "test", "docs"})
MAX_FILES = 400
MAX_BYTES = 256_000


class Repo:
    """Read-only view of the app directory: text of small files, the Python files to scan."""

    def __init__(self, root: Path, detected: Detected) -> None:
        self.root = root
        self.detected = detected

    def text(self, rel: str) -> str | None:
        path = self.root / rel
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        if rel not in self.detected.read:
            self.detected.read.append(rel)
        return path.read_text(errors="replace")

    def module_text(self, module: str) -> tuple[str, str] | None:
        """(relative path, text) of a dotted module, or of every file of a package."""
        base = module.replace(".", "/")
        for rel in (f"{base}.py", f"{base}/__init__.py"):
            text = self.text(rel)
            if text is not None:
                if rel.endswith("__init__.py"):
                    text += "".join(self.text(p.relative_to(self.root).as_posix()) or ""
                                    for p in sorted((self.root / base).glob("*.py")))
                    rel = f"{base}/"
                return rel, text
        return None

    def python_files(self) -> list[Path]:
        found: list[Path] = []
        stack = [self.root]
        while stack and len(found) < MAX_FILES:
            directory = stack.pop()
            for path in sorted(directory.iterdir()):
                if path.is_dir() and path.name not in SKIP_DIRS and not path.name.startswith("."):
                    stack.append(path)
                elif path.suffix == ".py" and path.is_file() and path.stat().st_size <= MAX_BYTES:
                    found.append(path)
        return found[:MAX_FILES]
