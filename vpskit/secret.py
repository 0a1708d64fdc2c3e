"""A value that prints as ``***`` everywhere: logs, reprs, f-strings and error messages."""

from __future__ import annotations

import re

MASK = "***"
SECRET_WORDS = re.compile(r"KEY|SECRET|PASSWORD|PASSWD|TOKEN|DSN|_URL$|CREDENTIAL", re.IGNORECASE)


class Secret:
    """Wrap a sensitive string; only :meth:`reveal` gives the value back."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return MASK

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def mask(text: str, secrets: list[str] | tuple[str, ...]) -> str:
    """Replace every occurrence of each secret value in ``text`` with ``***``."""
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def looks_secret(name: str) -> bool:
    """Whether an env variable's name suggests a credential (DATABASE_URL, SECRET_KEY...)."""
    return bool(SECRET_WORDS.search(name))
