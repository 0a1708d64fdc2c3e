"""The facts script, run here by bash: probes at once or in turn give the same sections."""

from __future__ import annotations

import subprocess

from vpskit import facts

COMMANDS = ["printf 'no newline'", "printf ''", "cat /nonexistent", "sleep 0.2; echo late",
            "echo one; echo two; exit 3"]
EXPECTED = [("no newline", 0), ("", 0), ("", 1), ("late", 0), ("one\ntwo", 3)]


def run(script: str) -> str:
    return subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True,
                          check=True).stdout


def test_probes_run_at_once_and_come_back_in_order():
    assert facts.parse_sections(run(facts.gather_script(COMMANDS))) == EXPECTED


def test_without_a_private_tmpfs_directory_they_run_in_turn_alike():
    script = facts.gather_script(COMMANDS).replace("-p /dev/shm", "-p /nonexistent")
    assert facts.parse_sections(run(script)) == EXPECTED
