"""The reach check after provision: the db host's ports, a managed service's host and port."""

from types import SimpleNamespace

import pytest

from vpskit import applier
from vpskit.applier import Context
from vpskit.config import App, Environment, Host
from vpskit.errors import ToolkitError
from vpskit.provision import database
from vpskit.secret import Secret
from vpskit.steps import Reporter

WEB = Host("203.0.113.2", roles=("web", "worker"), private_address="10.0.0.2")
DB = Host("203.0.113.3", roles=("db",), private_address="10.0.0.3")
MANAGED = {"DATABASE_URL": Secret("postgres://u:pw@db.provider.example:25060/d"),
           "REDIS_URL": Secret("rediss://:pw@cache.provider.example/0")}


class Remote:
    """Answers the reach script: the first of ``blocked`` among its targets is unreachable."""

    def __init__(self, blocked: str = "") -> None:
        self.blocked, self.targets = blocked, []

    def run(self, argv, check=True):
        args = argv[4:]
        self.targets = [f"{a}:{p}" for a, p in zip(args[::2], args[1::2], strict=True)]
        failed = self.blocked if self.blocked in self.targets else ""
        return SimpleNamespace(ok=not failed, stdout=failed + "\n" if failed else "")


def check(env: Environment, remote: Remote, urls: dict[str, str] | None = None) -> list[str]:
    """The reach step on WEB, given ``urls`` as the site phase gives the db host's URLs."""
    ctx = Context(env=env, host=WEB, remote=remote, out=Reporter(quiet=True))
    return applier.apply(ctx, database.reach(env, WEB, database.ReachFacts(dict(urls or {}))))


def test_managed_services_are_reached_at_their_urls_host_and_port():
    env = Environment("production", (WEB,), ("shop.test",), App("shop", "repo"), secrets=MANAGED)
    assert database.managed_endpoints(env) == [("db.provider.example", 25060),
                                               ("cache.provider.example", 6379)]
    remote = Remote()
    assert check(env, remote) == []  # reaching them changes nothing
    assert remote.targets == ["db.provider.example:25060", "cache.provider.example:6379"]
    with pytest.raises(ToolkitError, match=r"^203\.0\.113\.2 cannot reach the managed service at "
                                           r"cache\.provider\.example:6379; check"):
        check(env, Remote("cache.provider.example:6379"))


def test_a_separate_db_host_is_reached_at_its_private_address_and_the_sites_redis_port():
    env = Environment("production", (WEB, DB), ("shop.test",), App("shop", "repo"))
    urls = {"DATABASE_URL": "postgres://u:p@10.0.0.3:5432/d",
            "REDIS_URL": "redis://:p@10.0.0.3:6381/0"}
    remote = Remote()
    assert check(env, remote, urls) == [] and remote.targets == ["10.0.0.3:5432", "10.0.0.3:6381"]
    with pytest.raises(ToolkitError, match=r"cannot reach the db host 203\.0\.113\.3 at "
                                           r"10\.0\.0\.3:6381;"):
        check(env, Remote("10.0.0.3:6381"), urls)


def test_a_unix_socket_url_is_not_probed():
    env = Environment("production", (WEB,), ("shop.test",), App("shop", "repo"), secrets={
        "DATABASE_URL": Secret("postgres:///d?host=/run/postgresql"), "REDIS_URL": Secret(
            "unix:///run/redis.sock")})
    assert database.managed_endpoints(env) == [] and check(env, Remote()) == []
