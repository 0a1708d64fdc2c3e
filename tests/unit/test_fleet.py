"""The many-host runner: concurrency, prefixed output, failures naming each host, --hosts/--role."""

import io
import threading

import pytest

from vpskit import fleet
from vpskit.config import App, Environment, Host
from vpskit.errors import RemoteError, ToolkitError
from vpskit.steps import Reporter

HOSTS = (Host("10.0.0.1", roles=("web", "worker")), Host("10.0.0.2", roles=("web",)),
         Host("10.0.0.3", roles=("db",)))
ENV = Environment("production", HOSTS, ("shop.test",), App("shop", "repo"))


def test_jobs_run_at_the_same_time_with_prefixed_output():
    barrier = threading.Barrier(3, timeout=5)  # only passes if all three run at once
    stream = io.StringIO()

    def job(host, out):
        barrier.wait()
        out.line("hello")
        return host.address

    results, failures = fleet.each(HOSTS, job, Reporter(stream))
    assert results == {h.address: h.address for h in HOSTS} and failures == []
    assert sorted(stream.getvalue().splitlines()) == [f"[{h.address}] hello" for h in HOSTS]


def test_failures_are_named_per_host_in_one_line():
    def job(host, out):
        if host.address != "10.0.0.1":
            raise RemoteError(f"boom on {host.address}")
        return "ok"

    with pytest.raises(RemoteError) as err:
        fleet.each_or_raise(HOSTS, job, Reporter(io.StringIO()), "deploy")
    assert str(err.value) == ("deploy failed on 2 of 3 hosts: 10.0.0.2: boom on 10.0.0.2; "
                              "10.0.0.3: boom on 10.0.0.3")


def test_a_single_host_keeps_its_own_error_and_output():
    stream = io.StringIO()

    def job(host, out):
        out.line("plain")
        raise ToolkitError("as is")

    with pytest.raises(ToolkitError, match="^as is$"):
        fleet.each_or_raise(HOSTS[:1], job, Reporter(stream), "deploy")
    assert stream.getvalue() == "plain\n"


def test_select_by_hosts_and_role():
    assert fleet.select(ENV) == HOSTS
    assert [h.address for h in fleet.select(ENV, role="web")] == ["10.0.0.1", "10.0.0.2"]
    assert [h.address for h in fleet.select(ENV, hosts="10.0.0.3, 10.0.0.1")] == [
        "10.0.0.1", "10.0.0.3"]
    with pytest.raises(ToolkitError, match="--hosts: 10.9.9.9 not in environment 'production'"):
        fleet.select(ENV, hosts="10.9.9.9")
    with pytest.raises(ToolkitError, match="no host of environment 'production' has role 'lb'"):
        fleet.select(ENV, role="lb")
