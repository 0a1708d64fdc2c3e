"""Pure helpers of the test VPS harness: debian.sources parsing, hosts lines, argument checks."""

import pytest

from harness.testvps import HarnessError
from harness.testvps.network import hosts_with, hosts_without
from harness.testvps.rootfs import host_release, sources_for
from harness.testvps.state import check_args

BOOKWORM = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def test_mirror_is_the_stanza_with_the_bare_codename():
    security_first = BOOKWORM.split("\n\n")[1] + "\n" + BOOKWORM.split("\n\n")[0]
    assert host_release(BOOKWORM) == ("bookworm", "http://deb.debian.org/debian")
    assert host_release(security_first) == ("bookworm", "http://deb.debian.org/debian")


def test_no_plain_suite_is_an_error():
    with pytest.raises(HarnessError, match="no stanza with a plain suite"):
        host_release("Types: deb\nURIs: http://x\nSuites: bookworm-security\n")


def test_trixie_sources_rename_only_the_suites():
    trixie = sources_for(BOOKWORM, "trixie")
    assert "Suites: trixie trixie-updates\n" in trixie
    assert "Suites: trixie-security\n" in trixie
    assert "bookworm" not in trixie.replace("debian-archive-keyring", "")
    assert trixie.count("URIs:") == 2 and trixie.count("Signed-By:") == 2
    assert sources_for(BOOKWORM, "bookworm") == BOOKWORM


HOSTS = "127.0.0.1 localhost\n10.0.0.5 db.local  # vpskit-testvps:vps10\n"


def test_hosts_lines_are_added_once_and_removed_exactly():
    added = hosts_with(HOSTS, "vps1", "10.77.0.2", ("app.test", "www.app.test"))
    assert added == HOSTS + (
        "10.77.0.2 app.test  # vpskit-testvps:vps1\n"
        "10.77.0.2 www.app.test  # vpskit-testvps:vps1\n"
    )
    assert hosts_with(added, "vps1", "10.77.0.2", ("app.test", "www.app.test")) == added
    assert hosts_without(added, "vps1") == HOSTS  # vps10's line stays
    assert hosts_with("127.0.0.1 localhost", "a", "10.77.1.2", ("x.test",)).count("\n") == 2


@pytest.mark.parametrize("args,fragment", [
    (("Vps1",), "VPS name"),
    (("a-very-long-name",), "VPS name"),
    (("vps1", 256), "VPS index"),
    (("vps1", 0, "sid"), "suite 'sid'"),
    (("vps1", 0, "bookworm", ("app.test", "-bad.test")), "domain '-bad.test'"),
])
def test_bad_arguments_are_refused(args, fragment):
    with pytest.raises(HarnessError, match=fragment):
        check_args(*args)
