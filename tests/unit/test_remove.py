"""`fab remove` refuses to act without a confirmation; nothing is contacted before it."""

import io

import pytest

from vpskit import remove
from vpskit.config import App, Environment, Host
from vpskit.errors import ToolkitError
from vpskit.steps import Reporter

ENV = Environment("staging", (Host("192.0.2.1"),), ("staging.shop.test",), App("shop", "repo"))


def test_without_a_terminal_it_needs_yes(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(ToolkitError, match="confirm it on a terminal, or pass --yes"):
        remove.remove(ENV, yes=False, out=Reporter(quiet=True))


def test_a_wrong_answer_cancels(monkeypatch):
    monkeypatch.setattr("sys.stdin", type("Tty", (), {"isatty": lambda self: True})())
    with pytest.raises(ToolkitError, match="remove cancelled; nothing changed"):
        remove.remove(ENV, yes=False, out=Reporter(quiet=True), ask=lambda prompt: "production")
