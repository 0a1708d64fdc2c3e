"""The live line of long steps: shown on a terminal (a pseudo-terminal here), absent otherwise,
one line for concurrent hosts, and no thread left behind."""

import io
import os
import re
import select
import threading
import time
import tty
from dataclasses import replace

import pytest

from vpskit import fleet, steps
from vpskit.config import Host
from vpskit.errors import RemoteError
from vpskit.steps import ERASE, Reporter, live_text, run_steps


@pytest.fixture
def terminal():
    """A text stream on a pseudo-terminal (raw: bytes arrive as written) and a function reading
    everything written to it so far."""
    master, slave = os.openpty()
    tty.setraw(slave)
    stream = os.fdopen(slave, "w", encoding="utf-8")

    def written() -> str:
        data = b""
        while select.select([master], [], [], 0.2)[0]:
            data += os.read(master, 65536)
        return data.decode()

    yield stream, written
    stream.close()
    os.close(master)


@pytest.fixture
def fast(monkeypatch):
    """Show a step after 0.2s and redraw every 0.1s."""
    monkeypatch.setattr(steps, "LIVE_AFTER", 0.2)
    monkeypatch.setattr(steps, "TICK", 0.1)


def live_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "vpskit-live"]


def sleeping(seconds: float, changes=("done",)):
    return lambda _: time.sleep(seconds) or list(changes)


def test_a_long_step_shows_a_live_line_its_own_line_replaces(terminal):
    stream, written = terminal
    run_steps(None, [("quick", sleeping(0, [])), ("slow", sleeping(3.2))], Reporter(stream))
    text = written()
    first, rest = text.split("\n", 1)
    assert first == "  quick        unchanged      0.0s"
    lives = re.findall(r"\r\x1b\[K  slow         running      (\d+)s", rest)
    assert lives and set(lives) <= {"2", "3"}
    assert re.search(r"\r\x1b\[K  slow         changed        3\.\ds  done\n$", rest)
    assert live_threads() == []


def test_without_a_terminal_the_output_is_the_step_lines_only(fast):
    stream = io.StringIO()
    out = Reporter(stream)
    run_steps(None, [("packages", sleeping(0.5, ["31 installed"])), ("users", sleeping(0, []))],
              out)
    assert out.live is None and live_threads() == []
    assert stream.getvalue() == ("  packages     changed        0.5s  31 installed\n"
                                 "  users        unchanged      0.0s\n")


def test_quiet_on_a_terminal_prints_nothing(terminal, fast):
    stream, written = terminal
    run_steps(None, [("slow", sleeping(0.5))], Reporter(stream, quiet=True))
    assert written() == "" and live_threads() == []


def test_a_failing_step_erases_the_live_line_before_its_failed_line(terminal, fast):
    stream, written = terminal

    def fail(_):
        time.sleep(0.5)
        raise RemoteError("boom")

    with pytest.raises(RemoteError, match="^slow: boom$"):
        run_steps(None, [("slow", fail)], Reporter(stream))
    assert re.search(r"running      \ds\r\x1b\[K  slow         failed         0\.\ds\n$",
                     written())
    assert live_threads() == []


def test_an_interrupted_step_leaves_no_thread_and_no_live_line(terminal, fast):
    stream, written = terminal

    def interrupted(_):
        time.sleep(0.5)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_steps(None, [("slow", interrupted)], Reporter(stream))
    assert live_threads() == []
    assert re.search(r"  slow         running      \ds\r\x1b\[K$", written())


def test_concurrent_hosts_share_one_live_line_and_their_lines_stay_whole(terminal, fast):
    stream, written = terminal
    hosts = tuple(Host(f"192.0.2.{i}") for i in (1, 2, 3))
    started = threading.Barrier(3, timeout=5)

    def job(host, out):
        started.wait()
        return run_steps(None, [("upload", sleeping(0.6 * int(host.address[-1])))], out)

    results, failures = fleet.each(hosts, job, Reporter(stream))
    assert len(results) == 3 and failures == [] and live_threads() == []
    text = written()
    assert re.search(r"\r\x1b\[K  running: \[192\.0\.2\.\d\] upload \ds, "
                     r"\[192\.0\.2\.\d\] upload \ds, \[192\.0\.2\.\d\] upload \ds", text)
    finished = sorted(line.split(ERASE)[-1] for line in text.split("\n")[:-1])
    assert [re.sub(r"\d\.\ds", "_s", line) for line in finished] == [
        f"[192.0.2.{i}]   upload       changed        _s  done" for i in (1, 2, 3)]


def test_copies_of_a_reporter_share_its_live_line(terminal):
    stream, _ = terminal
    out = Reporter(stream)
    assert out.live is not None and replace(out, prefix="[10.0.0.1] ").live is out.live


@pytest.mark.parametrize(("running", "text"), [
    ([], ""),
    ([("", "packages", 99.0)], ""),
    ([("", "packages", 88.0)], "  packages     running      12s"),
    ([("[10.0.0.1] ", "virtualenv", 70.0), ("[10.0.0.2] ", "upload", 98.5)],
     "[10.0.0.1]   virtualenv   running      30s"),
    ([("[10.0.0.1] ", "virtualenv", 70.0), ("[10.0.0.2] ", "upload", 95.0)],
     "  running: [10.0.0.1] virtualenv 30s, [10.0.0.2] upload 5s"),
])
def test_live_text(running, text):
    assert live_text(running, now=100.0) == text
