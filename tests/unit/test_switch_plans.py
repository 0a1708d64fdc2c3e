"""Moving a host between releases as data (facts in, plans out), and the applier carrying a
switch out: an undo registered before the risky reload puts the previous upstream back."""

from __future__ import annotations

import pytest

from tests.unit.planned import hatches, runs
from tests.unit.test_failure_summaries import ENV, ScriptedRemote
from vpskit import applier, plan, readers, render
from vpskit.applier import Context
from vpskit.config import Host
from vpskit.deploy import switch
from vpskit.deploy.releases import Release, Releases
from vpskit.errors import RemoteError
from vpskit.files import FileSpec
from vpskit.plan import Plan, Run, Undo, Write
from vpskit.remote import Result
from vpskit.steps import Reporter

OLD, NEW = "20260101T100000Z-0aaaaaa", "20260101T110000Z-0bbbbbb"


def applied(remote, steps: Plan) -> list[str]:
    return applier.apply(Context(ENV, ENV.hosts[0], remote, Reporter(quiet=True)), steps)


def test_point_nginx_registers_the_previous_upstream_before_the_reload():
    undo, write, reload = switch.point_nginx(ENV, NEW, OLD).actions
    path = render.upstream_path(ENV)
    assert isinstance(undo, Undo) and undo.said == "previous one restored" and undo.covers == 2
    assert undo.actions[0] == Write((render_spec(path, OLD),))
    assert undo.actions[1] == Run(("systemctl", "reload", "nginx"), check=False)
    assert write == Write((render_spec(path, NEW),))
    assert isinstance(reload, Run) and reload.read == ("nginx_switch", "the new upstream")
    assert reload.argv[3] == "server-op" and reload.argv[4].startswith("shop-production-op-")
    assert reload.stdin == switch.SWITCH_NGINX and not reload.check


def render_spec(path: str, release_id: str) -> FileSpec:
    return FileSpec(path, render.nginx_upstream(ENV, release_id))


def test_a_refused_upstream_is_put_back_and_reloaded_and_the_error_says_so():
    remote = ScriptedRemote({"server-op": Result("", "", 3)})
    with pytest.raises(RemoteError, match=r"^192\.0\.2\.1: nginx refused the new upstream; "
                                          r"previous one restored$"):
        applied(remote, switch.point_nginx(ENV, NEW, OLD))
    writes = [line for line in remote.lines if "write-file" in line]
    assert len(writes) == 2 and all(render.upstream_path(ENV) in line for line in writes)
    assert remote.lines[-1] == "systemctl reload nginx"


def test_an_accepted_upstream_runs_no_undo():
    remote = ScriptedRemote({})
    assert applied(remote, switch.point_nginx(ENV, NEW, OLD)) == []
    assert not any(line == "systemctl reload nginx" for line in remote.lines)


def test_an_undo_that_fails_too_keeps_the_first_error():
    remote = ScriptedRemote({"server-op": Result("", "", 4), "false-undo": Result("", "no", 1)})
    guarded = plan_guarded_by(Run(("false-undo",)))
    with pytest.raises(RemoteError, match="nginx refused x; putting back also failed: .*"
                                          "false-undo` exited 1"):
        applied(remote, guarded)


def plan_guarded_by(undo: Run) -> Plan:
    return Plan((Undo((undo,), 1), Run(("server-op",), read=("nginx_switch", "x"), check=False)))


def test_an_undo_guards_only_the_actions_it_covers():
    remote = ScriptedRemote({"server-op": Result("", "", 3)})
    both = Plan((Undo((Run(("put-back",)),), 1), Run(("fine",)))) + plan_guarded_by(Run(("x",)))
    with pytest.raises(RemoteError, match="nginx refused x$"):
        applied(remote, both)
    assert remote.lines == ["fine", "server-op", "x"]


def test_stop_others_says_what_it_stops():
    said = readers.stopped("h", Result(f"shop-production-web@{OLD}.service\n", "", 0))
    assert said.changes == (f"stopping shop-production-web@{OLD}",)
    assert readers.stopped("h", Result("", "", 0)) == Plan()


def release(rid: str, state: str = "ok") -> Release:
    return Release(rid, state=state)


def steps_of(host: Host, target: str, live: str) -> dict[str, Plan]:
    found = Releases((release(OLD), release(NEW)), live)
    return dict(switch.switch_steps(ENV, host, release(target), found, tls=True))


def test_rolling_back_starts_checks_flips_then_stops_and_blames_the_newer_release():
    steps = steps_of(Host("h", roles=("web", "worker")), OLD, NEW)
    assert list(steps) == ["start", "switch", "stop old", "processes"]
    started = steps["start"]
    assert started.actions[0] == Undo(switch.stop(ENV, OLD).actions, 2)  # should the check fail
    assert runs(started) == [["systemctl", "start", render.web_unit_name(ENV, OLD)]]
    assert hatches(started)[0][:2] == ("health", "socket")
    flip = steps["switch"]
    assert flip.changes == (f"nginx -> {OLD}",)
    _, _, url = switch.public_url(ENV, tls=True)
    assert hatches(flip) == [("health", "https", "443", f"{url} through nginx", "")]
    assert runs(flip)[-2][3] == "server-op" and runs(flip)[-1][3] == "current"
    retire = steps["stop old"]
    assert retire.changes == (f"stopping {NEW}, marked bad",)
    assert [w.specs[0].content for w in retire.actions if isinstance(w, Write)][-1] == \
        '{"state": "bad"}\n'


def test_rolling_forward_blames_nobody_and_a_worker_host_only_moves_current():
    retire = steps_of(Host("h", roles=("web",)), NEW, OLD)["stop old"]
    assert retire.changes == (f"stopping {OLD}",)
    steps = steps_of(Host("h", roles=("worker",)), NEW, OLD)
    assert list(steps) == ["current", "processes"]
    assert steps["current"].changes == (f"current -> {NEW}",)


def test_a_guard_inside_a_guard_ends_where_its_own_actions_end():
    remote = ScriptedRemote({"bad": Result("", "", 1)})
    inner = plan.guarded(plan.run("a"), plan.run("undo-inner"))
    outer = plan.guarded(inner, plan.run("undo-outer"))
    with pytest.raises(RemoteError):
        applied(remote, outer + plan.run("bad"))
    assert remote.lines == ["a", "bad"]
    with pytest.raises(RemoteError):
        applied(remote, plan.guarded(plan.run("a") + plan.run("bad"), plan.run("undo")))
    assert remote.lines[-1] == "undo"
