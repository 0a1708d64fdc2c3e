"""Data tests of the pure halves of remote operations: facts in, plan out."""

import pytest

from vpskit import envfile, facts, files
from vpskit.errors import ToolkitError
from vpskit.provision import cache, database, firewall, system
from vpskit.secret import Secret, looks_secret, mask

ANY = firewall.ANYWHERE
VPSKIT = b"vpskit".hex()


def tuples(*rules: tuple[int, str], comment: str = "") -> str:
    """ufw's record of IPv4 allow rules, as /etc/ufw/user.rules has them."""
    tail = f" comment={comment}" if comment else ""
    return "".join(f"### tuple ### allow tcp {port} 0.0.0.0/0 any "
                   f"{'0.0.0.0/0' if source == ANY else source} in{tail}\n"
                   for port, source in rules)


UFW_ACTIVE = ("ENABLED=yes\nLOGLEVEL=low\n"
              'IPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\n'
              + tuples((22, ANY), (80, ANY), (443, ANY)))
TAGGED = UFW_ACTIVE.replace(" in\n", f" in comment={VPSKIT}\n")


def allow(*args: str) -> list[str]:
    return ["ufw", "allow", *args, "comment", "vpskit"]


@pytest.mark.parametrize("status,rules,expected", [
    ("", [(22, ANY), (80, ANY), (443, ANY)], [
        ["ufw", "default", "deny", "incoming"], ["ufw", "default", "allow", "outgoing"],
        allow("22/tcp"), allow("80/tcp"), allow("443/tcp"), ["ufw", "--force", "enable"]]),
    (UFW_ACTIVE, [(22, ANY), (80, ANY), (443, ANY)], []),
    (UFW_ACTIVE, [(2222, ANY), (80, ANY), (443, ANY)], [allow("2222/tcp")]),
    (UFW_ACTIVE.replace(tuples((80, ANY)), ""),
     [(22, ANY), (80, ANY), (443, ANY)], [allow("80/tcp")]),
    (UFW_ACTIVE, [(22, ANY)], []),  # untagged rules are the operator's: kept
    (TAGGED, [(22, ANY)], [["ufw", "delete", "allow", "80/tcp"],
                           ["ufw", "delete", "allow", "443/tcp"]]),
])
def test_firewall_plan(status, rules, expected):
    assert firewall.ufw_commands(status, rules, ssh_port=22) == expected


def test_firewall_never_deletes_the_ssh_port_and_keeps_what_another_site_needs():
    assert firewall.ufw_commands(TAGGED, [(80, ANY), (443, ANY)], ssh_port=22) == []
    assert firewall.stale(TAGGED, [], ssh_port=22) == [["ufw", "delete", "allow", "80/tcp"],
                                                        ["ufw", "delete", "allow", "443/tcp"]]


def test_firewall_registry_records_each_sites_rules():
    text = firewall.registry_text([(22, ANY), (5432, "10.0.0.2"), (6379, "fd00::2")])
    assert text == "22 Anywhere\n5432 10.0.0.2\n6379 fd00::2\n"
    out = "".join(f"/etc/vpskit/firewall/shop-production:{line}\n" for line in text.split("\n")
                  if line) + "/etc/vpskit/firewall/shop-staging:22 Anywhere\n"
    sites = facts.registry(firewall.REGISTRY, "ufw_sites", firewall.site_rules)
    assert sites.parse(out, 0) == {
        "shop-production": {(22, ANY), (5432, "10.0.0.2"), (6379, "fd00::2")},
        "shop-staging": {(22, ANY)}}


def test_facts_sections_keep_output_and_exit_codes():
    out = f"{facts.MARK}\nline one\nline two\n{facts.MARK} 0\n{facts.MARK}\n{facts.MARK} 3\n"
    assert facts.parse_sections(out) == [("line one\nline two", 0), ("", 3)]
    unterminated = f"{facts.MARK}\nno newline{facts.MARK} 0\n"
    assert facts.parse_sections(unterminated) == [("no newline", 0)]


def test_package_fact_parses_dpkg_status():
    probe = facts.packages(["nginx", "redis-server"])
    out = "nginx install ok installed\nredis-server deinstall ok config-files\n"
    assert probe.parse(out, 1) == {"nginx"}


@pytest.mark.parametrize("state,expected", [
    (None, ["created"]),
    (files.FileState(files.FileSpec("/x", "a").sha256, "root", "root", 0o644), []),
    (files.FileState("0" * 64, "root", "root", 0o644), ["content"]),
    (files.FileState(files.FileSpec("/x", "a").sha256, "www-data", "root", 0o600),
     ["owner www-data:root -> root:root", "mode 600 -> 644"]),
])
def test_file_differences(state, expected):
    assert files.differences(files.FileSpec("/x", "a"), state) == expected


def test_file_diff_masks_secrets_and_hides_secret_files():
    spec = files.FileSpec("/etc/app.conf", "password=hunter22\n")
    assert "hunter22" not in files.unified_diff(spec, "password=old\n", ["hunter22"])
    secret = files.FileSpec("/srv/.env", "K=hunter22\n", secret=True)
    assert "hunter22" not in files.unified_diff(secret, None, [])


def test_envfile_round_trip_with_quotes_and_backslashes():
    values = {"A": 'he said "hi"', "B": "back\\slash", "C": "plain", "D": "$NOT_EXPANDED"}
    assert envfile.parse(envfile.render(values)) == values
    assert envfile.parse("export X='a b'\n# c\nY=1\n") == {"X": "a b", "Y": "1"}
    with pytest.raises(ToolkitError, match=r"\.env:1: expected KEY=value"):
        envfile.parse("not a line\n")


@pytest.mark.parametrize("os_info,free,ok", [
    ({"ID": "debian", "VERSION_ID": "12"}, 5000, True),
    ({"ID": "ubuntu", "VERSION_ID": "24.04"}, 5000, True),
    ({"ID": "centos", "VERSION_ID": "9", "PRETTY_NAME": "CentOS Stream 9"}, 5000, False),
    ({"ID": "debian", "VERSION_ID": "12"}, 100, False),
])
def test_preflight_refuses_unsupported_os_and_full_disk(os_info, free, ok):
    res = {"disk_free_mb": free, "mem_mb": 4096, "swap_mb": 0}
    if ok:
        system.check_supported(os_info, res, 1024)
    else:
        with pytest.raises(ToolkitError):
            system.check_supported(os_info, res, 1024)


def test_redis_password_is_read_back_from_its_conf():
    conf = cache.redis_conf("shop-production", 6380, "pw-123", "64mb", "allkeys-lru")
    assert cache.current_password(conf) == "pw-123"
    assert cache.current_password(None) is None


def test_database_url_round_trips_the_password():
    url = database.database_url("shop_production", "a/b:c@d", "shop_production")
    assert database.url_password(url) == "a/b:c@d"


def test_secret_prints_masked():
    s = Secret("hunter2")
    assert f"{s} {s!r} {[s]}" == "*** *** [***]"
    assert mask("x hunter2 y", ["hunter2"]) == "x *** y"
    assert looks_secret("DATABASE_URL") and looks_secret("SECRET_KEY") and not looks_secret("DEBUG")


def test_firewall_admits_app_hosts_to_db_ports_once_and_drops_departed_ones():
    admitted = [(5432, "10.0.0.2"), (6379, "10.0.0.2")]
    assert firewall.ufw_commands(UFW_ACTIVE, [(22, ANY), *admitted], 22) == [
        allow("proto", "tcp", "from", "10.0.0.2", "to", "any", "port", "5432"),
        allow("proto", "tcp", "from", "10.0.0.2", "to", "any", "port", "6379")]
    done = UFW_ACTIVE + tuples(*admitted, comment=VPSKIT)
    assert firewall.ufw_commands(done, [(22, ANY), *admitted], 22) == []
    assert firewall.ufw_commands(done, [(22, ANY), (80, ANY), (443, ANY)], 22) == [
        ["ufw", "delete", "allow", "proto", "tcp", "from", "10.0.0.2", "to", "any", "port", p]
        for p in ("5432", "6379")]


HBA = "local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n"


def test_pg_hba_block_per_site_added_changed_removed():
    added = database.hba_with(HBA, "shop-production", "shop_production", "shop_production",
                              ["10.0.0.2", "10.0.0.3"])
    assert added == HBA + ("# vpskit shop-production begin\n"
                           "hostssl shop_production shop_production 10.0.0.2/32 scram-sha-256\n"
                           "hostssl shop_production shop_production 10.0.0.3/32 scram-sha-256\n"
                           "# vpskit shop-production end\n")
    assert database.hba_with(added, "shop-production", "shop_production", "shop_production",
                             ["10.0.0.2", "10.0.0.3"]) == added
    other = database.hba_with(added, "shop-staging", "shop_staging", "shop_staging", ["10.0.0.2"])
    assert other.startswith(added) and other.count("begin") == 2
    assert database.hba_with(other, "shop-production", "x", "x", []) == database.hba_with(
        HBA, "shop-staging", "shop_staging", "shop_staging", ["10.0.0.2"])


def test_service_urls_point_at_the_db_hosts_private_address():
    from vpskit.config import Host
    db, web = Host("203.0.113.9", private_address="10.0.0.9"), Host("203.0.113.8")
    url, ca = database.database_url("u", "p@ss", "d"), "/etc/ssl/vpskit/shop-db-ca.crt"
    assert database.url_for(url, db, db, ca) == url
    assert database.url_for(url, db, web, ca) == (
        "postgres://u:p%40ss@10.0.0.9:5432/d?sslmode=verify-full"
        "&sslrootcert=/etc/ssl/vpskit/shop-db-ca.crt")
    assert database.url_for("redis://:pw@127.0.0.1:6380/0", db, web, ca) == (
        "rediss://:pw@10.0.0.9:7380/0?ssl_cert_reqs=required"
        "&ssl_ca_certs=/etc/ssl/vpskit/shop-db-ca.crt")


def test_postgres_listens_beyond_localhost_only_with_the_hosts_own_certificate():
    assert database.pg_conf([]) == ("listen_addresses = 'localhost'\n"
                                    "password_encryption = 'scram-sha-256'\n")
    assert database.pg_conf(["10.0.0.9"]) == (
        "listen_addresses = 'localhost, 10.0.0.9'\npassword_encryption = 'scram-sha-256'\n"
        "ssl = on\nssl_cert_file = '/etc/ssl/vpskit/postgres.crt'\n"
        "ssl_key_file = '/etc/ssl/vpskit/postgres.key'\n")


def test_packages_follow_roles():
    assert "postgresql" not in system.packages_for(("web",))
    assert "nginx" not in system.packages_for(("db",))
    assert system.packages_for(("web", "worker")).count("python3") == 1


def test_firewall_roles_lb_web_db():
    from vpskit.config import App, Environment, Host
    lb = Host("203.0.113.1", roles=("lb", "web"), private_address="10.0.0.1")
    web = Host("203.0.113.2", roles=("web",), private_address="10.0.0.2")
    db = Host("203.0.113.3", roles=("db",), private_address="10.0.0.3")
    env = Environment("production", (lb, web, db), ("shop.test",), App("shop", "repo"))
    assert [firewall.public_ports(env, h) for h in (lb, web, db)] == [[22, 80, 443], [22], [22]]
    assert firewall.wanted(env, web, 6380) == ((22, ANY), (8080, "10.0.0.1"))
    assert firewall.wanted(env, db, 6381) == ((22, ANY), (5432, "10.0.0.1"), (7381, "10.0.0.1"),
                                              (5432, "10.0.0.2"), (7381, "10.0.0.2"))


def test_a_managed_database_url_reaches_the_env_file_as_given():
    from vpskit.config import App, Environment, Host
    from vpskit.provision import app
    env = Environment("production", (Host("192.0.2.1", roles=("web", "worker")),),
                      ("shop.test",), App("shop", "repo"),
                      secrets={"DATABASE_URL": Secret("postgres://u:p@db.example.com/x"),
                               "REDIS_URL": Secret("rediss://:p@cache.example.com:6380/0")})
    assert env.db_host is None and not env.own_postgres and not env.own_redis
    values = app.desired_env(env, current={}, managed={})
    assert values["DATABASE_URL"] == "postgres://u:p@db.example.com/x"
    assert values["REDIS_URL"] == "rediss://:p@cache.example.com:6380/0"


def test_a_failed_script_is_named_on_one_line_without_its_text():
    from vpskit.remote import describe
    assert describe(["bash", "-c", "set -e\nlong script\n", "archive", "/var/b", "x y"]) == \
        "archive /var/b 'x y'"
    assert describe(["systemctl", "restart", "nginx"]) == "systemctl restart nginx"
    assert "\n" not in describe(["python3", "-c", "a\nb"])


def test_database_owners_from_psql_lines():
    out = "postgres postgres\nshop_production shop_production\ntemplate1 postgres\n"
    assert database.database_owners(out)["shop_production"] == "shop_production"
    assert database.database_owners("") == {}
