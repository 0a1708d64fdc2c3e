"""The facts script, run here by bash: probes at once or in turn give the same sections."""

from __future__ import annotations

import subprocess

from vpskit import facts, files

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


def test_file_states_of_existing_files_and_globs_only(tmp_path):
    (tmp_path / "a.conf").write_text("a")
    (tmp_path / "b.timer").write_text("b")
    (tmp_path / "dir.timer").mkdir()
    probe = files.file_probe([str(tmp_path / "a.conf"), str(tmp_path / "missing")])
    found = probe.parse(run(probe.command), 0)
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    assert found == {str(tmp_path / "a.conf"): files.FileState(
        files.FileSpec("/x", "a").sha256, user, found[str(tmp_path / "a.conf")].group, 0o644)}
    glob = files.states_command(f"{tmp_path}/*.timer")
    assert list(files.parse_states(run(glob), 0)) == [str(tmp_path / "b.timer")]
    assert files.parse_states(run(files.states_command(f"{tmp_path}/none-*")), 0) == {}


def test_no_probes_no_sections():
    assert facts.parse_sections(run(facts.gather_script([]))) == []


class Recorded:
    """A remote that runs the facts script here, with ``systemctl`` answering as recorded."""

    def script(self, text: str):
        self.text = text
        fake = ('systemctl() { shift 4; for u in "$@"; do '
                'echo "MainPID=0"; echo "ActiveState=active"; echo "UnitFileState=enabled-$u"; '
                '[ "$u" = "${@: -1}" ] || echo; done; }\n')
        return subprocess.run(["bash", "-s"], input=fake + text, capture_output=True, text=True)


def test_unit_probes_share_one_systemctl_call_and_each_gets_its_own_units():
    remote = Recorded()
    found = facts.gather(remote, [
        facts.units(["a.timer"], "one"), facts.Probe("plain", "echo hi", lambda o, rc: o),
        facts.units(["b.service", "c.service"], "two", lambda states: sorted(states)),
        facts.units([], "none")])
    assert found == {"one": {"a.timer": ("active", "enabled-a.timer", 0)}, "plain": "hi",
                     "two": ["b.service", "c.service"], "none": {}}
    assert remote.text.count("systemctl show") == 2  # once run at once, once in turn


def test_a_file_is_written_whole_or_not_at_all(tmp_path):
    """The write script, as the server runs it: the content in place with its mode; a writer
    that died mid-way (stdin cut short) leaves the old file as it was."""
    path = tmp_path / "upstream.conf"
    path.write_text("old\n")
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    group = subprocess.run(["id", "-gn"], capture_output=True, text=True).stdout.strip()
    spec = files.FileSpec(str(path), "upstream web {\n    server unix:/run/a.sock;\n}\n",
                          user, group, 0o640)
    cut = subprocess.run(files.write_argv(spec), input=spec.content[:10], capture_output=True,
                         text=True)
    assert cut.returncode == 1 and "incomplete content, not written" in cut.stderr
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == [path.name]
    subprocess.run(files.write_argv(spec), input=spec.content, text=True, check=True)
    assert path.read_text() == spec.content and path.stat().st_mode & 0o777 == 0o640
