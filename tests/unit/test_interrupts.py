"""Signals end a task like Ctrl-C; an undo runs shielded from them; the final line."""

from __future__ import annotations

import io
import os
import signal
import time

import pytest

from vpskit import interrupts
from vpskit.errors import RemoteError, ToolkitError
from vpskit.steps import Reporter, run_steps


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_stops_the_steps_at_the_next_boundary_and_handlers_come_back(sig):
    before, ran = signal.getsignal(sig), []

    def step(name):
        def run(ctx):
            ran.append(name)
            if name == "first":
                os.kill(os.getpid(), sig)
                time.sleep(0.2)  # the step itself is not cut
                ran.append("first done")
            return []
        return name, run
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt, match=sig.name), interrupts.as_interrupts():
        run_steps(None, [step("first"), step("second")], Reporter(stream=out))
    assert ran == ["first", "first done"] and out.getvalue().startswith("  first ")
    assert signal.getsignal(sig) is before


def test_a_second_signal_stops_at_once():
    with pytest.raises(KeyboardInterrupt), interrupts.as_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)


def test_an_undo_is_not_stopped_by_signals():
    finished = []
    with interrupts.as_interrupts(), interrupts.shielded():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        finished.append(True)
    assert finished == [True]


def test_the_final_line_keeps_the_first_error_and_adds_what_recovery_did():
    notes = "rolled back to r1; serving: r1"
    assert str(interrupts.failure(RemoteError("x: boom"), notes)) == f"x: boom; {notes}"
    assert isinstance(interrupts.failure(RemoteError("x"), notes), RemoteError)
    assert str(interrupts.failure(KeyboardInterrupt("SIGTERM"), notes)) == \
        f"interrupted (SIGTERM); {notes}"
    lost = interrupts.failure(OSError("Socket is closed"), notes)
    assert type(lost) is ToolkitError and str(lost) == f"OSError: Socket is closed; {notes}"
